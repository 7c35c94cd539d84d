// Writing a post: POST /post/create, then the post shows at the top of your feed.

import { $ } from "./ui.js";
import { api } from "./api.js";
import { addOwn } from "./feed.js";

// A publish that failed (or whose answer was lost) is sent again with the same Idempotency-Key,
// so pressing Publish again never posts twice; another text gets a new key.
let pending = null; // { text, key }

// randomKey is 32 hex digits (crypto.randomUUID needs a secure context; plain http is served too).
const randomKey = () =>
  Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");

const status = (msg) => ($("post-status").textContent = msg);
const count = () => ($("post-count").textContent = [...$("post-text").value].length + " / 10000");

export const compose = {
  id: "compose",
  enter() { status(""); }, // no stale message from an earlier session
  leave() { status(""); count(); },
};

$("post-text").addEventListener("input", count);
$("compose").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const text = $("post-text").value;
  if (!text.trim()) {
    // The API refuses it too; say why without a round trip.
    status("Not published: the post is empty — spaces and line breaks alone are not a post.");
    return;
  }
  $("post-submit").disabled = true;
  if (!pending || pending.text !== text) pending = { text, key: randomKey() };
  try {
    const id = await api("POST", "/post/create", { text }, { "Idempotency-Key": pending.key });
    pending = null;
    $("post-text").value = "";
    count();
    status("Published: your followers see it now.");
    try {
      await addOwn(await api("GET", "/post/get/" + encodeURIComponent(id)));
    } catch { /* published all the same */ }
  } catch (e) {
    status("Not published: " + e.message); // the API's own words (400: what is wrong with the text)
  } finally {
    $("post-submit").disabled = false;
  }
});
