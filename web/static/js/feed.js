// The feed: posts of the people you follow (GET /post/feed, then live frames) and your own
// (GET /post/list?user_id=you, and each one you publish here), merged newest first. Both come
// from the server, so every browser you sign in from shows the same feed.

import { $, el, formatTime } from "./ui.js";
import { apiPage, nameOf } from "./api.js";

const PAGE = 50; // posts per REST page of each list ("Show older" loads the next)

let me = null;
// The REST lists merged here: {first: the path of its newest page, next: the path of its next
// (older) page from the last page's Link header, null once the list has ended, oldest: the id of
// the oldest post it sent}.
let lists = [];
let held = []; // posts read but older than where a list with more to come stands: shown later
const seen = new Set(); // "postId/type/position" of frames shown: replays and retries are deduped

export const feed = {
  id: "feed",
  async enter(s) {
    me = s.id;
    clear();
    lists = [list("/post/feed?limit=" + PAGE), list("/post/list?user_id=" + encodeURIComponent(s.id) + "&limit=" + PAGE)];
    await loadOlder();
  },
  leave() {
    me = null;
    clear();
  },
};

// ABOVE sorts above every post id (hex digits and dashes): the oldest post of a list that has
// sent none yet, so that nothing of the other lists shows before it has.
const ABOVE = "~";
const list = (first) => ({ first, next: first, oldest: ABOVE });

function clear() {
  lists = [];
  held = [];
  seen.clear();
  $("feed").replaceChildren();
  $("feed-more").hidden = true;
  $("feed-empty").hidden = false;
}

// loadOlder reads the next page of each list that has more, and shows the posts down to the
// oldest one that every such list has reached: the older posts of a list that is further back
// wait for the other, so that the merged feed never skips a post.
async function loadOlder() {
  const user = me;
  const btn = $("feed-more");
  btn.disabled = true;
  try {
    // One list after the other, so a tab holds one of the reads EXPENSIVE_READS_PER_USER allows
    // at a time; by cursor, not offset: a deep page costs the server what the first one does
    // (and offsets stop at FEED_MAX_OFFSET).
    for (const l of lists.filter((l) => l.next)) {
      const page = await apiPage(l.next);
      if (me !== user) return;
      l.next = page.next;
      if (page.items.length) l.oldest = page.items[page.items.length - 1].id;
      held.push(...page.items);
    }
    // Post ids are UUIDv7: their order is their age. A list with more to come has sent every
    // post down to its oldest (a page may be empty and still go on: the feed's read stops after
    // so many posts looked at), so the merged feed is whole down to the highest of those.
    const floor = lists.filter((l) => l.next).reduce((f, l) => (l.oldest > f ? l.oldest : f), "");
    const show = held.filter((p) => p.id >= floor);
    held = held.filter((p) => p.id < floor);
    for (const p of show) await add(fromPost(p), false);
    btn.hidden = !lists.some((l) => l.next);
  } catch (e) {
    if (e.status !== 401) $("feed-empty").textContent = "Could not load your feed: " + e.message;
  } finally {
    btn.disabled = false;
  }
}
$("feed-more").addEventListener("click", loadOlder);

// refresh re-reads the newest page of each list (after a connection that had no position to
// resume from).
export async function refreshFeed() {
  if (!me) return;
  for (const l of lists) {
    try {
      for (const p of (await apiPage(l.first)).items) await add(fromPost(p), false);
    } catch { /* the next refresh or frame brings them */ }
  }
}

function fromPost(p) {
  return { postId: p.id, postText: p.text, author_user_id: p.author_user_id, type: "post.created", created_at: p.created_at };
}

// addOwn shows a post you just published.
export function addOwn(p) { return add(fromPost(p), true); }

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
