// Writing a post: POST /post/create, then the post shows at the top of your feed.

import { $ } from "./ui.js";
import { api } from "./api.js";
import { addOwn } from "./feed.js";

const status = (msg) => ($("post-status").textContent = msg);
const count = () => ($("post-count").textContent = [...$("post-text").value].length + " / 10000");

export const compose = {
  id: "compose",
  enter() { status(""); }, // no stale message from an earlier session
  leave() { status(""); },
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
  try {
    const id = await api("POST", "/post/create", { text });
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
