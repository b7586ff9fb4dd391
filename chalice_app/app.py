"""musicvid on AWS: four thin routes and five thin step Lambdas over musicvid_core.

Routes parse, call :class:`musicvid_core.api.core.Api`, serialise. They sit behind the Cognito
authorizer on API Gateway *and* verify the bearer token themselves (``chalice local`` and the test
client verify nothing). The step Lambdas are the handlers the local runner calls, unchanged; the
exceptions they raise are the error-tree classes the ASL's Retry/Catch name.
"""

from chalice import Chalice, CognitoUserPoolAuthorizer, CORSConfig, Response
from chalicelib.wiring import api

from musicvid_core.api.core import SECURITY_HEADERS, error_headers, error_response
from musicvid_core.bootstrap import process_services
from musicvid_core.settings import Settings
from musicvid_core.workflow import steps

app = Chalice(app_name="musicvid")
_settings = Settings()  # reads MUSICVID_* once; nothing AWS is built at import time

# The pool ARN is filled at deploy time: infra/resources.json overrides providerARNs with the
# stack's UserPool (MUSICVID_USER_POOL_ARN may name an existing pool instead).
authorizer = CognitoUserPoolAuthorizer(
    "MusicvidUsers", header="Authorization",
    provider_arns=[_settings.user_pool_arn])
cors = CORSConfig(allow_origin=_settings.cors_origin,
                  allow_headers=["Authorization", "Content-Type"], max_age=600)
ROUTE = {"authorizer": authorizer, "cors": cors}


def _respond(call, *args) -> Response:
    request = app.current_request
    headers = {"Content-Type": "application/json", **SECURITY_HEADERS}
    try:
        user = api().authenticate(request.headers.get("authorization"))
        status, body = call(user, *args)
    except Exception as exc:  # one JSON error body, never a traceback
        status, body = error_response(exc)
        headers.update(error_headers(exc))  # Retry-After on a 429
    return Response(body=body, status_code=status, headers=headers)


def _body() -> bytes:
    return app.current_request.raw_body or b""


@app.route("/uploads", methods=["POST"], content_types=["application/json"], **ROUTE)
def create_upload_url():
    return _respond(lambda user: api().create_upload(user, _body()))


@app.route("/jobs", methods=["POST"], content_types=["application/json"], **ROUTE)
def submit_job():
    return _respond(lambda user: api().submit_job(user, _body()))


@app.route("/jobs/{job_id}", methods=["GET"], **ROUTE)
def get_job_status(job_id):
    return _respond(lambda user: api().get_job(user, job_id))


@app.route("/jobs", methods=["GET"], **ROUTE)
def get_user_jobs():
    return _respond(lambda user: api().list_jobs(user, app.current_request.query_params))


# --- step Lambdas: Step Functions invokes these with the ASL's Parameters ---------------------
@app.lambda_function(name="coordinator")
def coordinator(event, context):
    return steps.coordinator(event, process_services())


@app.lambda_function(name="analyzer")
def analyzer(event, context):
    return steps.analyzer(event, process_services())


@app.lambda_function(name="audio_generator")
def audio_generator(event, context):
    return steps.audio_generator(event, process_services())


@app.lambda_function(name="av_operator")
def av_operator(event, context):
    return steps.av_operator(event, process_services())


@app.lambda_function(name="failure_handler")
def failure_handler(event, context):
    return steps.failure_handler(event, process_services())
