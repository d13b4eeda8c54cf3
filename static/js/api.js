// The desk's HTTP client: the session cookie and CSRF header in the desk, the bearer token when
// embedded (third-party cookies may be blocked there, so nothing relies on them).

export class ApiError extends Error {
  constructor(status, code, message, fields) {
    super(message || `request failed (${status})`);
    this.status = status;
    this.code = code || "error";
    this.fields = fields || null;
  }
}

export class Api {
  constructor({ mode, token, csrf }) {
    this.mode = mode;
    this.token = token;
    this.csrf = csrf;
    this.onUnauthorized = () => {};
    this._blobs = new Map();
  }

  headers(extra = {}) {
    const headers = { Accept: "application/json", ...extra };
    if (this.mode === "token") headers.Authorization = `Bearer ${this.token}`;
    else if (this.csrf) headers["X-CSRF-Token"] = this.csrf;
    return headers;
  }

  async request(method, path, body) {
    const init = { method, headers: this.headers(), credentials: this.mode === "token" ? "omit" : "same-origin" };
    if (body instanceof FormData) {
      init.body = body;
    } else if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, "network", "The desk cannot reach the server.");
    }
    if (response.status === 204) return null;
    let data = null;
    const type = response.headers.get("Content-Type") || "";
    if (type.includes("application/json")) data = await response.json().catch(() => null);
    if (!response.ok) {
      const error = (data && data.error) || {};
      if (response.status === 401) this.onUnauthorized();
      throw new ApiError(response.status, error.code, error.message, error.fields);
    }
    return data;
  }

  get(path) { return this.request("GET", path); }
  post(path, body = {}) { return this.request("POST", path, body); }
  put(path, body) { return this.request("PUT", path, body); }
  patch(path, body) { return this.request("PATCH", path, body); }
  del(path) { return this.request("DELETE", path); }

  /**
   * Return a URL the page may use for an /api/ file. With the cookie that is the URL itself;
   * with a token the file is fetched with the Authorization header and shown from a blob: URL.
   */
  async fileUrl(url) {
    if (!url || this.mode !== "token") return url;
    if (this._blobs.has(url)) return this._blobs.get(url);
    const pending = fetch(url, { headers: { Authorization: `Bearer ${this.token}` }, credentials: "omit" })
      .then((response) => {
        if (!response.ok) throw new ApiError(response.status, "file", "The file is not available.");
        return response.blob();
      })
      .then((blob) => URL.createObjectURL(blob));
    this._blobs.set(url, pending);
    pending.catch(() => this._blobs.delete(url));
    return pending;
  }
}

/** Return a random id for a reply, so that sending it again never sends it twice. */
export function clientId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return "c-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
