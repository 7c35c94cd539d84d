// The live feed: the websocket /post/feed/posted with the ["bearer", token] subprotocol pair,
// reconnecting with ?since=<last position> so nothing is missed after a drop. A browser sees a
// refused handshake (401) only as close 1006, like a server that is down: after every attempt
// that never opened, an authenticated REST call tells the two apart, and a 401 there ends the
// session ("session expired") instead of retrying for ever with a token nobody accepts.
//
// Screens take the frames of a kind (design.md §4: "post", "dialog") with onFrames; the socket
// asks for exactly those kinds (?types=), and one resume position covers them all.

import { $ } from "./ui.js";
import { api } from "./api.js";
import { store } from "./store.js";
import { logout } from "./session.js";

// kind -> {frame(f), reload()}: frame gets each live frame of the kind; reload catches up through
// REST when the socket opened with no position to resume from.
const handlers = new Map();

// onFrames makes the socket ask for frames of kind and hand them to h.frame.
export function onFrames(kind, h) { handlers.set(kind, h); }

const kindOf = (type) => String(type || "").split(".")[0];

let session = null;
let socket = null;
let retryTimer = null;
let countdown = null;
let retryDelay = 1000;

export const live = {
  id: "live",
  enter(s) {
    session = s;
    retryDelay = 1000;
    connect();
  },
  leave() {
    session = null;
    stop();
    setState("offline", "offline");
  },
};

function stop() {
  clearTimeout(retryTimer);
  clearInterval(countdown);
  if (socket) {
    socket.onclose = null;
    socket.close(1000);
    socket = null;
  }
}

function setState(state, text) {
  const e = $("conn-state");
  e.dataset.state = state;
  e.textContent = text;
}

function connect() {
  stop();
  if (!session) return;
  const s = session;
  const since = store.get("since." + s.id);
  const url = new URL("/post/feed/posted", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("types", [...handlers.keys()].join(","));
  // Several frames per message when several are ready (one JSON object per line): a resume or a
  // burst costs the page one message event per batch, not per frame.
  url.searchParams.set("batch", "lines");
  if (since) url.searchParams.set("since", since);
  setState("connecting", "connecting…");
  const ws = new WebSocket(url, ["bearer", s.token]);
  let opened = false;
  socket = ws;
  ws.onopen = () => {
    opened = true;
    retryDelay = 1000;
    setState("live", "live");
    if (!since) for (const h of handlers.values()) h.reload(); // no position to resume from: catch up through REST
  };
  ws.onmessage = (ev) => {
    for (const line of String(ev.data).split("\n")) onFrame(s, line);
  };
  ws.onclose = (ev) => {
    if (socket !== ws) return;
    socket = null;
    if (ev.code === 4001) {
      logout("Session expired: log in again. (Your sign-in reached its time limit.)");
      return;
    }
    if (!opened) checkSession(s);
    retry();
  };
}

// onFrame handles one frame (one line of a message).
function onFrame(s, line) {
  let f;
  try {
    f = JSON.parse(line);
  } catch {
    return;
  }
  if (f.type === "resync" && Array.isArray(f.kinds)) {
    // The socket dropped frames of these kinds at or below f.position (more messages came than it
    // holds while we read) and goes on: reload those screens through REST. Every frame before this
    // one was at or below f.position, so resuming from there later misses nothing.
    if (f.position > Number(store.get("since." + s.id) || 0)) store.set("since." + s.id, String(f.position));
    for (const k of f.kinds) handlers.get(k)?.reload();
    return;
  }
  if (f.type === "resync") {
    // More was missed than one resume sends, or the server's newest position is below ours
    // (its database was restored): reload through REST and go on from the server's position,
    // even if it is lower than ours. The server closes the socket; we reconnect at once.
    store.set("since." + s.id, String(f.position));
    retryDelay = 0;
    for (const h of handlers.values()) h.reload(); // every screen that shows frames
    return;
  }
  if (typeof f.position === "number" && f.position > Number(store.get("since." + s.id) || 0)) {
    store.set("since." + s.id, String(f.position));
  }
  const h = handlers.get(kindOf(f.type));
  if (h) h.frame(f);
}

// checkSession asks the API whether it still accepts the token; a 401 signs out (api.js).
async function checkSession(s) {
  try {
    await api("GET", "/friend/list?limit=1");
  } catch {
    // 401: handled by api.js (logout). Anything else (server down): keep retrying.
  }
  if (session !== s) stop();
}

function retry() {
  const wait = retryDelay;
  retryDelay = Math.min(Math.max(retryDelay * 2, 1000), 30000);
  const at = Date.now() + wait + Math.random() * 300;
  const tick = () => {
    const left = Math.max(0, Math.ceil((at - Date.now()) / 1000));
    setState("reconnecting", "reconnecting in " + left + "s");
  };
  tick();
  countdown = setInterval(tick, 1000);
  retryTimer = setTimeout(connect, at - Date.now());
}

// Reconnect at once when the network comes back, or when the badge is clicked while waiting.
window.addEventListener("online", () => { if (session && !socket) connect(); });
$("conn-state").addEventListener("click", () => { if (session && !socket) { retryDelay = 1000; connect(); } });
