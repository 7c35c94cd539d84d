// The social page: plain JS modules, no dependencies, talking to the REST API (design.md §2) on
// this origin and to the live feed websocket (§4).
//
//   ui.js       DOM helpers          api.js     REST calls, errors, 401 → session expired
//   store.js    what this browser keeps (never follow state nor posts)
//   session.js  sign-up, log-in, log-out, your id; the view registry (how to add a screen)
//   feed.js     the feed             compose.js writing a post
//   people.js   search, follow, whom you follow (GET /friend/list)
//   live.js     the websocket, reconnects, finding out that the token is no longer accepted
//   dialogs.js  the Dialogs screen: conversations, sending, live messages
//
// To add a screen (e.g. dialogs): a <section data-view="dialogs" hidden> inside #signed-in in
// index.html, a module exporting {id: "dialogs", title: "Dialogs", enter(session), leave()}, and
// registerView(it) below; the header then shows a tab per screen. A screen that shows live frames
// takes its kind with onFrames(kind, {frame, reload}) (live.js): the socket asks for those kinds.

import { registerView, resume } from "./session.js";
import { feed, showFrame, refreshFeed } from "./feed.js";
import { compose } from "./compose.js";
import { people } from "./people.js";
import { live, onFrames } from "./live.js";
import { dialogs, dialogFrames } from "./dialogs.js";

registerView({
  id: "home",
  title: "Feed",
  async enter(s) {
    compose.enter(s);
    await Promise.all([feed.enter(s), people.enter(s)]);
  },
  leave() {
    compose.leave();
    feed.leave();
    people.leave();
  },
});
registerView(dialogs);
onFrames("post", { frame: showFrame, reload: refreshFeed });
onFrames("dialog", dialogFrames);
registerView(live); // not a screen: the connection every screen shares

resume();
