// The social page: plain JS, no dependencies. It talks to the REST API (design.md §2) on this
// origin and to the live feed websocket /post/feed/posted with the ["bearer", token] subprotocol
// pair, reconnecting with ?since=<last position> so nothing is missed after a drop.
"use strict";

const $ = (id) => document.getElementById(id);
const store = {
  get: (k) => localStorage.getItem("social." + k),
  set: (k, v) => localStorage.setItem("social." + k, v),
  del: (k) => localStorage.removeItem("social." + k),
};

let session = null; // {id, token}
let socket = null;
let retryTimer = null;
let retryDelay = 1000;
const seen = new Set(); // "postId/type/position" of frames shown: replays and retries are deduped
const names = new Map(); // user id -> display name

function toast(msg) {
  const t = $("toast");
  t.textContent = msg;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.hidden = true), 4000);
}

async function api(method, path, body, extraHeaders) {
  const headers = { ...extraHeaders };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (session) headers["Authorization"] = "Bearer " + session.token;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) {
    if (res.status === 401 && session) logout("Your session expired: please log in again.");
    throw new Error((data && data.message) || res.statusText);
  }
  return data;
}

async function nameOf(id) {
  if (names.has(id)) return names.get(id);
  try {
    const u = await api("GET", "/user/get/" + encodeURIComponent(id));
    names.set(id, u.first_name + " " + u.second_name);
  } catch {
    names.set(id, id.slice(0, 8));
  }
  return names.get(id);
}

// ---- sign up / log in ----

$("register").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const password = $("reg-password").value;
  try {
    const r = await api("POST", "/user/register", {
      first_name: $("reg-first").value.trim(), second_name: $("reg-last").value.trim(),
      birthdate: $("reg-birthdate").value, city: $("reg-city").value.trim(),
      biography: $("reg-bio").value.trim(), password,
    });
    await login(r.user_id, password);
    toast("Welcome! Your user id is " + r.user_id + " — you log in with it.");
  } catch (e) {
    toast("Could not create the account: " + e.message);
  }
});

$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    await login($("login-id").value.trim(), $("login-password").value);
  } catch (e) {
    toast("Could not log in: " + e.message);
  }
});

$("forgot-search").addEventListener("click", async () => {
  const list = $("forgot-results");
  list.replaceChildren();
  const users = await searchUsers($("forgot-first").value, $("forgot-last").value);
  for (const u of users) {
    const b = button("This is me", "secondary", () => ($("login-id").value = u.id));
    list.append(person(u, b));
  }
  if (!users.length) list.append(li("Nobody found."));
});

async function login(id, password) {
  const r = await api("POST", "/login", { id, password });
  session = { id, token: r.token };
  store.set("session", JSON.stringify(session));
  store.set("lastId", id);
  await enter();
}

function logout(msg) {
  if (socket) { socket.onclose = null; socket.close(1000); socket = null; }
  clearTimeout(retryTimer);
  session = null;
  store.del("session");
  $("feed").replaceChildren();
  seen.clear();
  $("signed-in").hidden = true;
  $("signed-out").hidden = false;
  $("whoami").hidden = $("logout").hidden = true;
  setState("offline");
  if (msg) toast(msg);
}
$("logout").addEventListener("click", () => logout());

async function enter() {
  $("signed-out").hidden = true;
  $("signed-in").hidden = false;
  $("whoami").hidden = $("logout").hidden = false;
  $("whoami").textContent = "…";
  nameOf(session.id).then((n) => ($("whoami").textContent = n));
  await loadFeed();
  connect();
}

// ---- posting ----

$("post-text").addEventListener("input", () => ($("post-count").textContent = [...$("post-text").value].length + " / 10000"));
$("compose").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const text = $("post-text").value;
  if (!text.trim()) return;
  $("post-submit").disabled = true;
  // A publish that failed (or whose answer was lost) is retried with the same Idempotency-Key,
  // so pressing Publish again never posts twice; a new text gets a new key.
  if (!pendingPost || pendingPost.text !== text) pendingPost = { text, key: randomKey() };
  try {
    await api("POST", "/post/create", { text }, { "Idempotency-Key": pendingPost.key });
    pendingPost = null;
    $("post-text").value = "";
    $("post-count").textContent = "0 / 10000";
    $("post-status").textContent = "Published: your followers see it now.";
  } catch (e) {
    $("post-status").textContent = "Not published: " + e.message;
  } finally {
    $("post-submit").disabled = false;
  }
});

let pendingPost = null;

// randomKey is 32 hex digits from crypto.getRandomValues (crypto.randomUUID needs a secure context).
function randomKey() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

// ---- people ----

function following() { return new Set(JSON.parse(store.get("following." + session.id) || "[]")); }
function saveFollowing(s) { store.set("following." + session.id, JSON.stringify([...s])); }

async function searchUsers(first, last) {
  const q = new URLSearchParams({ first_name: first.trim(), last_name: last.trim() });
  try {
    return await api("GET", "/user/search?" + q);
  } catch (e) {
    toast("Search failed: " + e.message);
    return [];
  }
}

$("search").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const list = $("search-results");
  list.replaceChildren();
  const users = (await searchUsers($("search-first").value, $("search-last").value)).filter((u) => u.id !== session.id);
  const f = following();
  for (const u of users) {
    names.set(u.id, u.first_name + " " + u.second_name);
    const b = button(f.has(u.id) ? "Unfollow" : "Follow", f.has(u.id) ? "secondary follow" : "follow", async () => {
      const now = following();
      const on = !now.has(u.id);
      b.disabled = true;
      try {
        await api("PUT", (on ? "/friend/set/" : "/friend/delete/") + encodeURIComponent(u.id));
        on ? now.add(u.id) : now.delete(u.id);
        saveFollowing(now);
        b.textContent = on ? "Unfollow" : "Follow";
        b.className = on ? "secondary follow" : "follow";
        toast(on ? "You follow " + names.get(u.id) + ": their new posts appear live." : "Unfollowed.");
      } catch (e) {
        toast(e.message);
      } finally {
        b.disabled = false;
      }
    });
    b.dataset.userId = u.id;
    list.append(person(u, b));
  }
  if (!users.length) list.append(li("Nobody found. Try a shorter prefix."));
});

function li(text) { const e = document.createElement("li"); e.textContent = text; return e; }
function button(text, cls, onClick) {
  const b = document.createElement("button");
  b.type = "button"; b.textContent = text; b.className = cls; b.addEventListener("click", onClick);
  return b;
}
function person(u, action) {
  const e = document.createElement("li");
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = u.first_name + " " + u.second_name + (u.city ? " · " + u.city : "");
  const id = document.createElement("small");
  id.textContent = u.id;
  who.append(id);
  e.append(who, action);
  return e;
}

// ---- feed ----

async function loadFeed() {
  try {
    const posts = await api("GET", "/post/feed?offset=0&limit=50");
    for (const p of posts.reverse()) await show({ postId: p.id, postText: p.text, author_user_id: p.author_user_id, type: "post.created" }, false);
  } catch (e) {
    toast("Could not load your feed: " + e.message);
  }
}

async function show(f, fresh) {
  const key = f.postId + "/" + f.type + "/" + (f.position || "");
  if (seen.has(key)) return;
  seen.add(key);
  const feed = $("feed");
  let item = feed.querySelector('[data-post-id="' + CSS.escape(f.postId) + '"]');
  if (f.type === "post.created" && item) return; // already listed (from /post/feed)
  if (!item) {
    if (f.type !== "post.created") return; // an edit of a post we never listed
    item = document.createElement("li");
    item.dataset.postId = f.postId;
    const meta = document.createElement("div");
    meta.className = "meta";
    const text = document.createElement("div");
    text.className = "text";
    item.append(meta, text);
    feed.prepend(item);
    meta.textContent = (await nameOf(f.author_user_id)) + (f.created_at ? " · " + new Date(f.created_at).toLocaleString() : "");
  }
  item.querySelector(".text").textContent = f.type === "post.deleted" ? "(deleted)" : f.postText;
  item.classList.toggle("deleted", f.type === "post.deleted");
  if (fresh) { item.classList.remove("fresh"); void item.offsetWidth; item.classList.add("fresh"); }
  $("feed-empty").hidden = feed.children.length > 0;
}

// ---- live connection ----

function setState(s, detail) {
  const e = $("conn-state");
  e.dataset.state = s;
  e.textContent = detail || s;
}

function connect() {
  clearTimeout(retryTimer);
  if (!session) return;
  const since = store.get("since." + session.id);
  const url = new URL("/post/feed/posted", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (since) url.searchParams.set("since", since);
  setState(socket ? "reconnecting" : "connecting", "connecting…");
  const ws = new WebSocket(url, ["bearer", session.token]);
  socket = ws;
  ws.onopen = () => {
    retryDelay = 1000;
    setState("live", "live");
    if (!since) loadFeed(); // no position to resume from: catch up through the REST feed instead
  };
  ws.onmessage = (ev) => {
    const f = JSON.parse(ev.data);
    if (typeof f.position === "number" && f.position > Number(store.get("since." + session.id) || 0)) {
      store.set("since." + session.id, String(f.position));
    }
    show(f, true);
  };
  ws.onclose = (ev) => {
    if (socket !== ws) return;
    if (ev.code === 4001) { logout("Your session expired: please log in again."); return; }
    const wait = retryDelay;
    retryDelay = Math.min(retryDelay * 2, 30000);
    setState("reconnecting", "reconnecting in " + Math.round(wait / 1000) + "s");
    retryTimer = setTimeout(connect, wait + Math.random() * 300);
  };
}

window.addEventListener("online", () => { if (session && socket && socket.readyState !== WebSocket.OPEN) connect(); });

// ---- start ----

(function start() {
  const last = store.get("lastId");
  if (last) $("login-id").value = last;
  const saved = store.get("session");
  if (saved) {
    session = JSON.parse(saved);
    enter();
  }
})();
