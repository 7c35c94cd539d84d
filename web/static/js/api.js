// The REST API of design.md §2 on this origin. Errors carry the server's message; a 401 on an
// authenticated call means the server no longer accepts our token (it expired, or the server
// restarted with another JWT_SECRET): onUnauthorized is told, once per token.

let token = null;
let onUnauthorized = () => {};

export function setToken(t) { token = t; }
export function whenUnauthorized(fn) { onUnauthorized = fn; }

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(method, path, body, extraHeaders) {
  return (await send(method, path, body, extraHeaders)).data;
}

// apiPage GETs a page of a list that pages by cursor (the feed, a user's posts): its items, and
// the path of the next page from its Link header, null when the list has ended.
export async function apiPage(path) {
  const { data, res } = await send("GET", path);
  const next = /<([^>]*)>;\s*rel="next"/.exec(res.headers.get("Link") || "");
  return { items: data, next: next ? next[1] : null };
}

async function send(method, path, body, extraHeaders) {
  const headers = { ...extraHeaders };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const sent = token;
  if (sent) headers["Authorization"] = "Bearer " + sent;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const err = new ApiError(res.status, (data && data.message) || res.statusText || "HTTP " + res.status);
    if (res.status === 401 && sent && sent === token) onUnauthorized(err);
    throw err;
  }
  return { data, res };
}

// Users by id, for names on posts.
const names = new Map();
export function rememberName(u) { names.set(u.id, u.first_name + " " + u.second_name); }
export async function nameOf(id) {
  if (names.has(id)) return names.get(id);
  try {
    rememberName(await api("GET", "/user/get/" + encodeURIComponent(id)));
  } catch {
    names.set(id, id.slice(0, 8));
  }
  return names.get(id);
}
