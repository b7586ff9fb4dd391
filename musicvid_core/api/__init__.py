"""The API, framework-neutral: request validation, the four routes' logic, JSON shapes and error
bodies (core.py, models.py), JWT verification (auth.py), the one way to build it (build.py), and
the local server behind ``musicvid serve`` (server.py), and the web app: static files in web/ (package
data) and their host side in webapp.py (docs/web.md). chalice_app/ wraps the same :class:`Api`;
upload/download links are adapters (adapters/aws/links.py, adapters/local/links.py)."""
