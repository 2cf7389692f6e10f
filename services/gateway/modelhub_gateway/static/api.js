// The one place the UI talks to the gateway. Every HTTP call in this app goes through
// api(METHOD, `/path`) with a string-literal method and a template-literal path, so that
// tests/integration/test_ui.py can find each call and check it against the gateway's OpenAPI.

const BASE = "/api/v1";
const TOKEN_KEY = "modelhub.token";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    this.detail = detail;
  }
}

export const getToken = () => localStorage.getItem(TOKEN_KEY) || "";
export const setToken = (token) => localStorage.setItem(TOKEN_KEY, token.trim());
export const clearToken = () => localStorage.removeItem(TOKEN_KEY);

/** Path segments are user input: always encode them. */
export const enc = encodeURIComponent;

let onUnauthorized = () => {};
let onError = () => {};
/** app.js wires these: a 401 goes back to sign-in, any other failure shows a toast. */
export function configure(handlers) {
  onUnauthorized = handlers.onUnauthorized;
  onError = handlers.onError;
}

/** The server's `detail` made readable: a string as-is, FastAPI's 422 list one line per problem. */
export function formatDetail(detail) {
  if (detail == null) return "";
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((item) => {
        if (item && typeof item === "object" && "msg" in item) {
          const loc = (item.loc || []).filter((part) => part !== "body").join(".");
          return loc ? `${loc}: ${item.msg}` : item.msg;
        }
        return typeof item === "string" ? item : JSON.stringify(item);
      })
      .join("; ");
  }
  return JSON.stringify(detail);
}

/**
 * Call the API. `body` is JSON-encoded, or sent as-is when it is FormData (multipart upload).
 * Options: `quiet` suppresses the error toast (the caller reports the error itself); `blob`
 * resolves to the body as a Blob (images: the token goes in a header, never in an <img> URL);
 * `onEvent` reads a Server-Sent Events stream, calling it with each event's JSON data, and
 * resolves when the stream ends (EventSource cannot send the token; `signal` aborts it).
 * Resolves to the parsed JSON (null for 204); rejects with ApiError after reporting it.
 */
export async function api(method, path, body, { quiet = false, blob = false, onEvent = null, signal = undefined } = {}) {
  const headers = { Authorization: `Bearer ${getToken()}`, Accept: blob ? "*/*" : "application/json" };
  let payload;
  if (body instanceof FormData) {
    payload = body; // the browser sets the multipart boundary
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(BASE + path, { method, headers, body: payload, signal });
  } catch (exc) {
    if (exc.name === "AbortError") return null;
    const error = new ApiError(0, `Cannot reach the gateway (${exc.message})`);
    if (!quiet) onError(error);
    throw error;
  }
  if (response.status === 204) return null;
  if (blob && response.ok) return response.blob();
  if (onEvent && response.ok) return readEvents(response, onEvent);
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { detail: text };
    }
  }
  if (!response.ok) {
    const detail = formatDetail(data && data.detail) || `${response.status} ${response.statusText}`;
    const error = new ApiError(response.status, detail);
    if (response.status === 401) {
      onUnauthorized(error);
    } else if (!quiet) {
      onError(error);
    }
    throw error;
  }
  return data;
}

/**
 * Server-Sent Events as the spec reads them: lines end in LF, CRLF or CR; a blank line ends an
 * event; `data:` lines (one leading space dropped) are joined with LF; comment lines (`: ping`,
 * the gateway's keep-alive), `id:`, `event:` and `retry:` carry nothing the UI needs.
 */
async function readEvents(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      // a CR at the end may be the first half of a CRLF: it waits for the next chunk, or the end
      buffer = (buffer + (value || "")).replace(done ? /\r\n?/g : /\r\n|\r(?!$)/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const data = eventData(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (data !== null) onEvent(JSON.parse(data));
      }
      if (done) return null;
    }
  } catch (exc) {
    if (exc.name === "AbortError") return null;
    throw exc;
  }
}

/** One event's data (its `data:` lines joined), or null when it has none (a comment, a ping). */
function eventData(block) {
  const lines = block.split("\n").filter((line) => line === "data" || line.startsWith("data:"));
  if (!lines.length) return null;
  return lines.map((line) => line.slice(5).replace(/^ /, "")).join("\n");
}
