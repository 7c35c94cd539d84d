// Who is signed in, and the signed-in page's views.
//
// A view is one screen of the signed-in page: {id, title, enter(session), leave()} and a
// <section data-view="ID"> in index.html. registerView adds it; the header shows a tab per view
// once there are two or more. enter runs on every sign-in (and on reload with a saved session),
// leave on sign-out; a view starts its own work in enter and stops it in leave. Parts that are not
// screens (the live connection) register the same way with no section.

import { $, el, toast, hideToast, copyText } from "./ui.js";
import { api, setToken, whenUnauthorized, nameOf } from "./api.js";
import { store } from "./store.js";

let session = null; // {id, token}
const views = [];
let current = null;

export function currentSession() { return session; }

export function registerView(view) {
  views.push(view);
  renderTabs();
}

function renderTabs() {
  const screens = views.filter((v) => v.title);
  const nav = $("views");
  nav.replaceChildren(...screens.map((v) =>
    el("button", { type: "button", className: "tab", textContent: v.title, dataset: { view: v.id }, onclick: () => show(v.id) })));
  nav.hidden = screens.length < 2 || !session;
}

// showSignedIn shows the signed-in page, or the signed-out one with nothing of a session on it:
// no tabs, no connection badge, no log-out button.
function showSignedIn(on) {
  $("signed-out").hidden = on;
  $("signed-in").hidden = !on;
  $("logout").hidden = !on;
  $("conn-state").hidden = !on;
  renderTabs();
}

// show makes view id the visible screen.
export function show(id) {
  current = id;
  for (const s of document.querySelectorAll("#signed-in [data-view]")) s.hidden = s.dataset.view !== id;
  for (const b of $("views").children) b.classList.toggle("active", b.dataset.view === id);
}

export async function login(id, password) {
  const r = await api("POST", "/login", { id, password });
  await start({ id, token: r.token });
}

async function start(s) {
  session = s;
  setToken(s.token);
  store.set("session", JSON.stringify(s));
  store.set("lastId", s.id);
  showSignedIn(true);
  $("session-notice").hidden = true;
  $("me-id").textContent = s.id;
  $("me-name").textContent = "…";
  $("copy-id").textContent = "Copy";
  nameOf(s.id).then((n) => { if (session === s) $("me-name").textContent = n; });
  show(current || (views.find((v) => v.title) || {}).id);
  for (const v of views) {
    try {
      await v.enter(s);
    } catch (e) {
      console.error(v.id, e);
    }
    if (session !== s) return; // signed out meanwhile (the token was refused)
  }
}

// logout ends the session; notice, when given, stays on the sign-in screen (e.g. why).
export function logout(notice) {
  if (!session) return;
  // Nothing typed stays for the next person at this browser (a sign-up form still filled in
  // made a second account at a click).
  for (const f of document.forms) f.reset();
  $("forgot-results").replaceChildren();
  for (const v of views) {
    try {
      v.leave();
    } catch (e) {
      console.error(v.id, e);
    }
  }
  session = null;
  current = null; // the next sign-in starts on the first screen
  setToken(null);
  store.del("session");
  hideToast();
  showSignedIn(false);
  // The id you log in with stays in the field.
  const last = store.get("lastId");
  if (last) $("login-id").value = last;
  $("login-password").value = "";
  const n = $("session-notice");
  n.textContent = notice || "";
  n.hidden = !notice;
  if (notice) $("login-password").focus();
}

// The server no longer accepts our token: say so where the user logs in again.
whenUnauthorized(() => logout("Session expired: log in again. (The server no longer accepts your sign-in: it expired, or the server restarted.)"));

$("logout").addEventListener("click", () => logout());

$("copy-id").addEventListener("click", async () => {
  const how = await copyText(session.id, $("me-id"));
  $("copy-id").textContent = how === "copied" ? "Copied" : "Selected: press Ctrl+C";
  setTimeout(() => ($("copy-id").textContent = "Copy"), 3000);
});

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
    toast("Welcome! Your user id is shown at the top left: you log in with it.", 6000);
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

// resume signs in again with the session saved in this browser, if any.
export function resume() {
  const last = store.get("lastId");
  if (last) $("login-id").value = last;
  const saved = store.getJSON("session", null);
  if (saved && saved.id && saved.token) start(saved);
}
