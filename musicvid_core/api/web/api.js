// The API client: JSON calls with the bearer token, and the presigned-POST upload with progress.
// The token travels only in the Authorization header, never in a URL.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export class Api {
  // base: the API's URL ("" = this page's origin); token(): the current bearer token or null.
  constructor(base, token) {
    this.base = base.replace(/\/$/, "");
    this.token = token;
  }

  async call(method, path, body) {
    const headers = { Accept: "application/json" };
    const token = this.token();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(this.base + path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer",
      });
    } catch {
      throw new ApiError(0, "network", "The server can't be reached. Check your connection and try again.");
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { /* not JSON: described below */ }
    if (!response.ok) {
      const message = (data && data.message) || `The server answered ${response.status}.`;
      const err = new ApiError(response.status, (data && data.error) || "http_error", message);
      err.retryAfter = Number(response.headers.get("Retry-After")) || null;
      throw err;
    }
    return data;
  }

  createUpload(contentType, size) { return this.call("POST", "/uploads", { content_type: contentType, size }); }
  submit(body) { return this.call("POST", "/jobs", body); }
  job(id) { return this.call("GET", `/jobs/${encodeURIComponent(id)}`); }
  jobs(limit, next) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (next) q.set("next", next);
    return this.call("GET", `/jobs?${q}`);
  }
}

// POST the file to a presigned form ({url, fields}: S3's shape, or musicvid serve's twin).
// Returns {done: Promise, abort()}; onProgress(sentBytes, totalBytes) follows the real upload.
export function uploadForm(form, file, onProgress) {
  const xhr = new XMLHttpRequest();
  const done = new Promise((resolve, reject) => {
    const body = new FormData();
    for (const [k, v] of Object.entries(form.fields)) body.append(k, v);
    body.append("file", file);  // S3 ignores every field after the file: it goes last
    xhr.open("POST", form.url);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) { resolve(); return; }
      let message = `The upload was refused (${xhr.status}).`;
      try { message = JSON.parse(xhr.responseText).message || message; } catch {
        const m = /<Message>([^<]*)<\/Message>/.exec(xhr.responseText || "");  // S3 answers XML
        if (m) message = m[1];
      }
      reject(new ApiError(xhr.status, "upload_refused", message));
    };
    xhr.onerror = () => reject(new ApiError(0, "network", "The upload was cut off (network). Try again."));
    xhr.ontimeout = () => reject(new ApiError(0, "network", "The upload timed out. Try again."));
    xhr.onabort = () => reject(new ApiError(0, "aborted", "Upload cancelled."));
    xhr.send(body);
  });
  return { done, abort: () => xhr.abort() };
}
