// Finding people and following them. Whom you follow comes from the server (GET /friend/list),
// so every browser you sign in from shows the same Follow / Unfollow.

import { $, el, button, person, toast } from "./ui.js";
import { api, rememberName } from "./api.js";

const following = new Map(); // user id -> user, whom the signed-in user follows
let me = null;
const watchers = [];

// onFollowingChange calls fn with the users you follow, each time that changes (read at sign-in,
// follow, unfollow), so other screens list them without asking the server again.
export function onFollowingChange(fn) { watchers.push(fn); }
export function followed() { return [...following.values()]; }

export const people = {
  id: "people",
  async enter(s) {
    me = s.id;
    following.clear();
    $("search-results").replaceChildren();
    renderFollowing();
    await loadFollowing(s.id);
  },
  leave() {
    me = null;
    following.clear();
    $("search-results").replaceChildren();
    renderFollowing();
  },
};

// loadFollowing reads whom you follow, 1,000 at a time (up to 20,000).
async function loadFollowing(user) {
  const all = [];
  for (let offset = 0; offset < 20000; offset += 1000) {
    const page = await api("GET", "/friend/list?offset=" + offset + "&limit=1000");
    all.push(...page);
    if (page.length < 1000) break;
  }
  if (me !== user) return;
  following.clear();
  for (const u of all) {
    rememberName(u);
    following.set(u.id, u);
  }
  renderFollowing();
  refreshButtons();
}

function renderFollowing() {
  for (const fn of watchers) fn(followed());
  const list = $("following");
  list.replaceChildren(...[...following.values()].map((u) => person(u, followButton(u))));
  $("following-empty").hidden = following.size > 0;
  $("following-count").textContent = following.size ? "(" + following.size + ")" : "";
}

function followButton(u) {
  const b = button("", "", () => toggle(u, b));
  b.dataset.userId = u.id;
  paint(b);
  return b;
}

function paint(b) {
  const on = following.has(b.dataset.userId);
  b.textContent = on ? "Unfollow" : "Follow";
  b.className = on ? "secondary follow" : "follow";
}

function refreshButtons() {
  for (const b of document.querySelectorAll("button.follow")) paint(b);
}

async function toggle(u, b) {
  const on = !following.has(u.id);
  const user = me;
  b.disabled = true;
  try {
    await api("PUT", (on ? "/friend/set/" : "/friend/delete/") + encodeURIComponent(u.id));
    if (me !== user) return; // signed out meanwhile: nothing of that session shows
    if (on) following.set(u.id, u);
    else following.delete(u.id);
    renderFollowing();
    refreshButtons();
    toast(on ? "You follow " + u.first_name + " " + u.second_name + ": their new posts appear live." : "Unfollowed.");
  } catch (e) {
    if (e.status !== 401 && me === user) toast(e.message);
  } finally {
    b.disabled = false;
  }
}

export async function searchUsers(first, last) {
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
  const users = (await searchUsers($("search-first").value, $("search-last").value)).filter((u) => u.id !== me);
  for (const u of users) {
    rememberName(u);
    list.append(person(u, followButton(u)));
  }
  if (!users.length) list.append(el("li", { textContent: "Nobody found. Names match from their start: try a shorter prefix." }));
});

// On the sign-in screen: find your own id by name.
$("forgot-search").addEventListener("click", async () => {
  const list = $("forgot-results");
  list.replaceChildren();
  const users = await searchUsers($("forgot-first").value, $("forgot-last").value);
  for (const u of users) list.append(person(u, button("This is me", "secondary", () => ($("login-id").value = u.id))));
  if (!users.length) list.append(el("li", { textContent: "Nobody found." }));
});
