// Dialogs: pick a user, read your conversation with them (GET /dialog/{id}/list), send
// (POST /dialog/{id}/send), and receive messages live (dialog.message frames, design.md §4).
// The people to talk to: whom you follow (people.js: kept up to date as you follow and unfollow),
// whoever wrote to you while the page was open, and anyone found by name.

import { $, el, button, person, toast, formatTime } from "./ui.js";
import { api, rememberName, nameOf } from "./api.js";
import { searchUsers, followed, onFollowingChange } from "./people.js";

const PAGE = 100; // messages per REST page ("Show older" loads the next)

let me = null;
let peer = null; // the user whose conversation is open
let oldest = null; // id of the oldest message shown: the next older page ends before it
const peers = new Map(); // user id -> user, listed on the left
const talked = new Set(); // peers listed for a message or a search, not (only) for being followed
const unread = new Set(); // peers whose messages arrived while their conversation was closed

export const dialogs = {
  id: "dialogs",
  title: "Dialogs",
  enter(s) {
    me = s.id;
    reset();
    listFollowed(followed());
  },
  leave() {
    me = null;
    reset();
  },
};

function reset() {
  peer = null;
  oldest = null;
  peers.clear();
  talked.clear();
  unread.clear();
  renderPeers();
  $("dialog-search-results").replaceChildren();
  $("dialog-messages").replaceChildren();
  $("dialog-title").textContent = "Pick someone to talk to";
  $("dialog-compose").hidden = true;
  $("dialog-more").hidden = true;
  $("dialog-status").textContent = "";
}

function addPeer(u) {
  rememberName(u);
  if (u.id === me) return;
  peers.set(u.id, u);
  renderPeers();
}

// listFollowed makes the list hold whom you follow: it adds the newly followed, and drops the
// unfollowed unless you talk with them (their dialog is open, unread, or they came by a message or
// a search).
function listFollowed(users) {
  if (!me) return;
  const ids = new Set(users.map((u) => u.id));
  for (const id of peers.keys()) {
    if (!ids.has(id) && !talked.has(id) && !unread.has(id) && id !== peer) peers.delete(id);
  }
  for (const u of users) if (!peers.has(u.id)) peers.set(u.id, u);
  renderPeers();
}
onFollowingChange(listFollowed);

function renderPeers() {
  const list = $("dialog-peers");
  list.replaceChildren(...[...peers.values()].map((u) => {
    const b = button(unread.has(u.id) ? "Open •" : "Open", u.id === peer ? "" : "secondary", () => open(u.id));
    b.classList.add("open-dialog");
    const li = person(u, b);
    li.classList.toggle("unread", unread.has(u.id));
    li.classList.toggle("active", u.id === peer);
    return li;
  }));
  $("dialog-peers-empty").hidden = peers.size > 0;
}

// open shows the conversation with id: its newest page, then live messages.
async function open(id) {
  peer = id;
  oldest = null;
  unread.delete(id);
  renderPeers();
  $("dialog-messages").replaceChildren();
  $("dialog-compose").hidden = false;
  $("dialog-status").textContent = "";
  $("dialog-title").textContent = "Dialog with " + (await nameOf(id));
  await loadPage(id, false);
  $("dialog-text").focus();
}

// loadPage adds a page of the conversation: the newest (older = false), or the one before what is
// shown.
async function loadPage(id, older) {
  let path = "/dialog/" + encodeURIComponent(id) + "/list?limit=" + PAGE;
  if (older && oldest) path += "&before=" + encodeURIComponent(oldest);
  try {
    const msgs = await api("GET", path);
    if (peer !== id) return;
    for (const m of msgs) add(m);
    if (older || !oldest) $("dialog-more").hidden = msgs.length < PAGE;
  } catch (e) {
    if (e.status !== 401) $("dialog-status").textContent = "Could not load the dialog: " + e.message;
  }
}
$("dialog-more").addEventListener("click", () => peer && loadPage(peer, true));

// add shows a message of the open conversation in id order (UUIDv7: send order), once.
function add(m) {
  const list = $("dialog-messages");
  if (list.querySelector('[data-message-id="' + CSS.escape(m.id) + '"]')) return;
  const mine = m.from === me;
  const item = el("li", { className: mine ? "mine" : "theirs", dataset: { messageId: m.id, createdAt: m.created_at || "" } },
    el("div", { className: "text", textContent: m.text }),
    el("div", { className: "meta", textContent: m.created_at ? formatTime(m.created_at) : "" }));
  let before = null;
  for (const other of list.children) {
    if (other.dataset.messageId > m.id) { before = other; break; }
  }
  list.insertBefore(item, before);
  if (!oldest || m.id < oldest) oldest = m.id;
  if (!before) item.scrollIntoView({ block: "nearest" });
}

// frame applies a live dialog.message frame: in the open conversation it shows at once; from
// anyone else it marks their entry (added to the list if new).
async function frame(f) {
  if (!me || f.type !== "dialog.message") return;
  const other = f.from === me ? f.to : f.from;
  talked.add(other);
  if (other === peer) {
    add(f);
    return;
  }
  if (!peers.has(other)) {
    try {
      addPeer(await api("GET", "/user/get/" + encodeURIComponent(other)));
    } catch {
      return;
    }
  }
  if (f.from !== me) {
    unread.add(other);
    renderPeers();
    toast("New message from " + (await nameOf(other)));
  }
}

// reload catches up when the socket opened with nothing to resume from.
function reload() { if (peer) loadPage(peer, false); }

export const dialogFrames = { frame, reload };

$("dialog-compose").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const text = $("dialog-text").value;
  const to = peer;
  if (!to) return;
  if (!text.trim()) {
    $("dialog-status").textContent = "Not sent: the message is empty — spaces and line breaks alone are not a message.";
    return;
  }
  $("dialog-send").disabled = true;
  try {
    await api("POST", "/dialog/" + encodeURIComponent(to) + "/send", { text });
    $("dialog-text").value = "";
    $("dialog-status").textContent = "";
    // The message comes back as a live frame (every tab of yours gets it); without a live socket,
    // read it from the dialog.
    if ($("conn-state").dataset.state !== "live") loadPage(to, false);
  } catch (e) {
    $("dialog-status").textContent = "Not sent: " + e.message;
  } finally {
    $("dialog-send").disabled = false;
  }
});

$("dialog-search").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const list = $("dialog-search-results");
  list.replaceChildren();
  const users = (await searchUsers($("dialog-search-first").value, $("dialog-search-last").value)).filter((u) => u.id !== me);
  for (const u of users) {
    rememberName(u);
    list.append(person(u, button("Message", "message", () => { talked.add(u.id); addPeer(u); list.replaceChildren(); open(u.id); })));
  }
  if (!users.length) list.append(el("li", { textContent: "Nobody found. Names match from their start." }));
});
