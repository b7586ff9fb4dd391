"""JobStore on DynamoDB: one item per job, conditional writes on a ``version`` attribute.

Table: partition key ``job_id`` (S). GSI ``by_user``: partition ``user_id`` (S), sort ``created_key``
(S, ``"{created_at iso}#{job_id}"``): a total order, so "strictly after (created_at, job_id)" is one
key condition and pages never skip or repeat jobs created in the same microsecond. The rules
(transitions, versions, page tokens) live in the JobStore base; this class implements primitives.

Two more kinds of item share the table, keyed so no job id (a UUID) can collide and carrying
neither ``user_id`` nor ``status`` (so the GSI and the status scan never see them):
``#active/{user_id}`` holds the user's count of SCHEDULED + PROCESSING jobs, changed in the same
transaction as the job write that enters or leaves those states (the per-user cap is a condition
on it), and ``#secret/page-token`` the page tokens' HMAC secret, created once by a conditional put.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

from musicvid_core.adapters.aws.errors import aws_call, error_code
from musicvid_core.domain.errors import ConcurrentUpdate
from musicvid_core.domain.job import Job, Status
from musicvid_core.ports import ACTIVE, JobStore, too_many_jobs

USER_INDEX = "by_user"


def _created_key(created_at_iso: str, job_id: str) -> str:
    return f"{created_at_iso}#{job_id}"


class DynamoDBJobStore(JobStore):
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    @staticmethod
    def _item(job: Job) -> dict:
        created = job.created_at.isoformat()
        return {"job_id": {"S": job.job_id}, "user_id": {"S": job.user_id},
                "created_key": {"S": _created_key(created, job.job_id)}, "status": {"S": job.status.value},
                "version": {"N": str(job.version)}, "body": {"S": job.model_dump_json()}}

    def _counter(self, user_id: str, delta: int, max_active: int | None) -> dict:
        """The transaction item that adds ``delta`` to the user's active count: at most
        ``max_active`` afterwards when given, never below 0."""
        update: dict = {"TableName": self.table, "Key": {"job_id": {"S": f"#active/{user_id}"}},
                        "UpdateExpression": "ADD active :d", "ExpressionAttributeValues": {":d": {"N": str(delta)}}}
        if max_active is not None:
            update["ConditionExpression"] = "attribute_not_exists(active) OR active < :cap"
            update["ExpressionAttributeValues"][":cap"] = {"N": str(max_active)}
        elif delta < 0:
            update["ConditionExpression"] = "active > :zero"
            update["ExpressionAttributeValues"][":zero"] = {"N": "0"}
        return {"Update": update}

    def _transact(self, put: dict, counter: dict) -> tuple[bool, bool]:
        """Write ``put`` and ``counter`` together; (put's condition held, counter's held)."""
        try:
            self.client.transact_write_items(TransactItems=[{"Put": put}, counter])
        except Exception as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])] + ["", ""]
            return reasons[0] != "ConditionalCheckFailed", reasons[1] != "ConditionalCheckFailed"
        return True, True

    def _insert(self, job: Job, max_active: int | None = None) -> None:
        put = {"TableName": self.table, "Item": self._item(job), "ConditionExpression": "attribute_not_exists(job_id)"}
        with aws_call(f"DynamoDB PutItem {job.job_id}"):
            if job.status in ACTIVE:
                new, under_cap = self._transact(put, self._counter(job.user_id, 1, max_active))
            else:
                new = under_cap = True
                try:
                    self.client.put_item(**put)
                except Exception as exc:
                    if error_code(exc) != "ConditionalCheckFailedException":
                        raise
                    new = False
        if not new:
            raise ConcurrentUpdate(f"job {job.job_id} already exists")
        if not under_cap:
            raise too_many_jobs(job.user_id, max_active)

    def _get(self, job_id: str) -> Job | None:
        with aws_call(f"DynamoDB GetItem {job_id}"):
            out = self.client.get_item(TableName=self.table, Key={"job_id": {"S": job_id}}, ConsistentRead=True)
        item = out.get("Item")
        return Job.model_validate_json(item["body"]["S"]) if item else None

    def _replace_if(self, job: Job, expected_version: int, *, active_delta: int = 0,
                    max_active: int | None = None) -> bool:
        put = {"TableName": self.table, "Item": self._item(job),
               "ConditionExpression": "attribute_exists(job_id) AND #v = :v",
               "ExpressionAttributeNames": {"#v": "version"},
               "ExpressionAttributeValues": {":v": {"N": str(expected_version)}}}
        with aws_call(f"DynamoDB PutItem {job.job_id}"):
            if active_delta:
                written, counted = self._transact(put, self._counter(job.user_id, active_delta, max_active))
                if written and not counted and active_delta > 0:
                    raise too_many_jobs(job.user_id, max_active)
                if not (written and not counted):
                    return written and counted
                # leaving an active state with the count already at 0 (a job from before the
                # counter existed): the job's write must not depend on it
            try:
                self.client.put_item(**put)
            except Exception as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    return False
                raise
        return True

    def _shared_secret(self) -> bytes:
        key = {"job_id": {"S": "#secret/page-token"}}
        with aws_call("DynamoDB PutItem page-token secret"):
            try:  # the first writer wins; everyone reads what it wrote
                self.client.put_item(TableName=self.table, Item={**key, "value": {"B": secrets.token_bytes(32)}},
                                     ConditionExpression="attribute_not_exists(job_id)")
            except Exception as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise
            out = self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True)
        return bytes(out["Item"]["value"]["B"])

    def _by_user(self, user_id: str, limit: int, after: tuple[str, str] | None) -> list[Job]:
        cond, values = "user_id = :u", {":u": {"S": user_id}}
        if after:
            cond += " AND created_key < :k"
            values[":k"] = {"S": _created_key(*after)}
        jobs: list[Job] = []
        kwargs: dict = {"TableName": self.table, "IndexName": USER_INDEX, "KeyConditionExpression": cond,
                        "ExpressionAttributeValues": values, "ScanIndexForward": False}
        with aws_call(f"DynamoDB Query {USER_INDEX}"):
            while len(jobs) < limit:
                out = self.client.query(Limit=limit - len(jobs), **kwargs)
                jobs += [Job.model_validate_json(i["body"]["S"]) for i in out.get("Items", [])]
                if "LastEvaluatedKey" not in out:
                    break
                kwargs["ExclusiveStartKey"] = out["LastEvaluatedKey"]
        return jobs

    def _by_status(self, statuses: Iterable[Status]) -> list[Job]:
        # A scan: only crash recovery asks this, rarely; the table is keyed for the hot paths.
        vals = {f":s{i}": {"S": s.value} for i, s in enumerate(statuses)}
        kwargs: dict = {"TableName": self.table, "FilterExpression": f"#st IN ({', '.join(vals)})",
                        "ExpressionAttributeNames": {"#st": "status"}, "ExpressionAttributeValues": vals}
        jobs: list[Job] = []
        with aws_call("DynamoDB Scan"):
            for page in self.client.get_paginator("scan").paginate(**kwargs):
                jobs += [Job.model_validate_json(i["body"]["S"]) for i in page.get("Items", [])]
        return sorted(jobs, key=lambda j: j.created_at)


def create_table(client: Any, table: str) -> None:
    """Create the job table and its GSI (tests and local development; infra/ does it on AWS)."""
    client.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("job_id", "user_id", "created_key")],
        KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[{"IndexName": USER_INDEX, "Projection": {"ProjectionType": "ALL"},
                                 "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"},
                                               {"AttributeName": "created_key", "KeyType": "RANGE"}]}])
