// The feed: posts of the people you follow (GET /post/feed, then live frames), newest first, and
// your own posts as you publish them (their ids are kept in this browser, their text and time
// come from GET /post/get, so edits and deletions show).

import { $, el, formatTime } from "./ui.js";
import { api, nameOf } from "./api.js";
import { store } from "./store.js";

const PAGE = 50; // posts per REST page ("Show older" loads the next)
const MINE = 50; // own posts remembered per user in this browser

let me = null;
let loaded = 0; // REST feed posts loaded so far: the next page's offset
const seen = new Set(); // "postId/type/position" of frames shown: replays and retries are deduped

export const feed = {
  id: "feed",
  async enter(s) {
    me = s.id;
    clear();
    await Promise.all([loadPage(), loadMine()]);
  },
  leave() {
    me = null;
    clear();
  },
};

function clear() {
  loaded = 0;
  seen.clear();
  $("feed").replaceChildren();
  $("feed-more").hidden = true;
  $("feed-empty").hidden = false;
}

// loadPage adds the next page of the REST feed (older posts) below what is shown.
async function loadPage() {
  const user = me;
  const btn = $("feed-more");
  btn.disabled = true;
  try {
    const posts = await api("GET", "/post/feed?offset=" + loaded + "&limit=" + PAGE);
    if (me !== user) return;
    loaded += posts.length;
    for (const p of posts) await add(fromPost(p), false);
    btn.hidden = posts.length < PAGE;
  } catch (e) {
    if (e.status !== 401) $("feed-empty").textContent = "Could not load your feed: " + e.message;
  } finally {
    btn.disabled = false;
  }
}
$("feed-more").addEventListener("click", loadPage);

// refresh re-reads the newest page (after a connection that had no position to resume from).
export async function refreshFeed() {
  if (!me) return;
  try {
    const posts = await api("GET", "/post/feed?offset=0&limit=" + PAGE);
    for (const p of posts) await add(fromPost(p), false);
  } catch { /* the next refresh or frame brings them */ }
}

function fromPost(p) {
  return { postId: p.id, postText: p.text, author_user_id: p.author_user_id, type: "post.created", created_at: p.created_at };
}

async function loadMine() {
  const user = me;
  const ids = store.getJSON("mine." + user, []);
  const kept = [];
  for (const id of ids) {
    try {
      const p = await api("GET", "/post/get/" + encodeURIComponent(id));
      if (me !== user) return;
      kept.push(id);
      await add(fromPost(p), false);
    } catch (e) {
      if (e.status === 404) continue; // deleted
      kept.push(id);
    }
  }
  if (me === user) store.setJSON("mine." + user, kept);
}

// addOwn shows a post you just published and remembers it for the next visit.
export async function addOwn(p) {
  const ids = store.getJSON("mine." + me, []).filter((id) => id !== p.id);
  ids.unshift(p.id);
  store.setJSON("mine." + me, ids.slice(0, MINE));
  await add(fromPost(p), true);
}

// showFrame applies a live frame (design.md §4).
export function showFrame(f) { return add(f, true); }

async function add(f, fresh) {
  const key = f.postId + "/" + f.type + "/" + (f.position || "");
  if (seen.has(key)) return;
  seen.add(key);
  const list = $("feed");
  let item = list.querySelector('[data-post-id="' + CSS.escape(f.postId) + '"]');
  if (f.type === "post.created" && item) return; // already listed
  if (!item) {
    if (f.type !== "post.created") return; // an edit of a post we never listed
    const mine = f.author_user_id === me;
    item = el("li", { className: mine ? "mine" : "", dataset: { postId: f.postId, authorId: f.author_user_id, createdAt: f.created_at || "" } },
      el("div", { className: "meta" }), el("div", { className: "text" }));
    insertByAge(list, item);
    const who = mine ? "You" : await nameOf(f.author_user_id);
    item.querySelector(".meta").textContent = who + (f.created_at ? " · " + formatTime(f.created_at) : "");
  }
  item.querySelector(".text").textContent = f.type === "post.deleted" ? "(deleted)" : f.postText;
  item.classList.toggle("deleted", f.type === "post.deleted");
  if (fresh) { item.classList.remove("fresh"); void item.offsetWidth; item.classList.add("fresh"); }
  $("feed-empty").hidden = list.children.length > 0;
}

// insertByAge keeps the list newest first: post ids are UUIDv7, so their order is their age.
function insertByAge(list, item) {
  for (const other of list.children) {
    if (other.dataset.postId < item.dataset.postId) {
      list.insertBefore(item, other);
      return;
    }
  }
  list.append(item);
}
