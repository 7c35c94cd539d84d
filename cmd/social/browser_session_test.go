package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserPageShowsWhatIsTrue drives the page through what issue #25 found misleading, in one
// browser session: Petra signs up, follows Bob and writes a post, then logs in from a fresh
// browser and logs out of the first.
//   - item 1: the Dialogs "People" list shows Bob as soon as she follows him, without a reload;
//   - item 2: her own post is in her feed in the fresh browser (from GET /post/list), in order
//     with Bob's;
//   - item 3: after she logs out, no form holds anything she typed (the user id to log in with
//     stays);
//   - item 4: signed out, neither the tabs, nor the connection badge, nor a toast shows, before
//     the first sign-in and after logging out;
//   - item 5: the console has no error on either browser (no favicon.ico 404), and a toast covers
//     no card, on a window of a small laptop.
func TestBrowserPageShowsWhatIsTrue(t *testing.T) {
	t.Parallel()
	b := newBrowser(t)
	s := newStack(t)
	base, _ := s.start(t, "all")
	petra, fresh := b.person(), b.person()
	checkPetraConsole, checkFreshConsole := consoleErrors(t, petra), consoleErrors(t, fresh)
	bobName := fmt.Sprintf("Bob%d", time.Now().UnixNano()%100000)
	bob := signUp(t, base, bobName)
	post(t, base, bob, "Bob was here first")

	do(t, petra, "the signed-out page",
		chromedp.EmulateViewport(1280, 600),
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#register")))
	if shown := eval[string](t, petra, shownOf(signedInOnly)); shown != "" {
		t.Errorf("before signing in, the page shows %s", shown)
	}

	do(t, petra, "Petra signs up; Dialogs has nobody yet",
		signUpSteps(base, "Petra", "Truth", "petra's secret"),
		chromedp.Click(chromedp.CSS(`#views button[data-view="dialogs"]`)),
		chromedp.WaitVisible(chromedp.CSS("#dialog-peers-empty")),
		chromedp.Click(chromedp.CSS(`#views button[data-view="home"]`)))
	petraID := myID(t, petra, "Petra")

	do(t, petra, "Petra follows Bob",
		searchSteps(bobName, "Test"),
		chromedp.Click(chromedp.CSS("#search-results button.follow")),
		poll(fmt.Sprintf(`!!document.querySelector('#following li[data-user-id=%q]')`, bob.id)))
	if covered := pollValue[string](t, petra, toastCovers); covered != "[]" {
		t.Errorf("the toast covers %s", covered)
	}
	screenshot(t, petra, "browser-toast.png")
	do(t, petra, "Dialogs lists Bob now",
		chromedp.Click(chromedp.CSS(`#views button[data-view="dialogs"]`)),
		poll(fmt.Sprintf(`!!document.querySelector('#dialog-peers li[data-user-id=%q]')`, bob.id)),
		poll(`document.querySelector("#dialog-peers-empty").hidden`),
		chromedp.Click(chromedp.CSS(`#views button[data-view="home"]`)))

	const mine = "Petra's own words, kept by the server"
	do(t, petra, "Petra posts",
		chromedp.SendKeys(chromedp.CSS("#post-text"), mine),
		chromedp.Click(chromedp.CSS("#post-submit")),
		poll(fmt.Sprintf(`[...document.querySelectorAll("#feed li.mine .text")].some(e => e.textContent === %q)`, mine)))

	do(t, fresh, "Petra logs in from a fresh browser: her post and Bob's, newest first",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#login")),
		chromedp.SendKeys(chromedp.CSS("#login-id"), petraID),
		chromedp.SendKeys(chromedp.CSS("#login-password"), "petra's secret"),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#signed-in")),
		poll(fmt.Sprintf(`[...document.querySelectorAll("#feed li .text")].map(e => e.textContent).join("|") === %q`,
			mine+"|Bob was here first")),
		poll(`document.querySelector("#feed li.mine .meta").textContent.startsWith("You · ")`))

	// Log out while a toast shows (unfollowing Bob says so).
	do(t, petra, "Petra unfollows Bob and logs out",
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#following li[data-user-id=%q] button.follow`, bob.id))),
		poll(`!document.querySelector("#toast").hidden && document.querySelector("#toast").textContent === "Unfollowed."`),
		chromedp.Click(chromedp.CSS("#logout")),
		chromedp.WaitVisible(chromedp.CSS("#login")))
	if shown := eval[string](t, petra, shownOf(signedInOnly)); shown != "" {
		t.Errorf("after logging out, the page shows %s", shown)
	}
	if kept := eval[string](t, petra, formsHolding); kept != "" {
		t.Errorf("after logging out, these fields still hold what Petra typed: %s", kept)
	}
	if got := eval[string](t, petra, `document.querySelector("#login-id").value`); got != petraID {
		t.Errorf("after logging out the login field holds %q, want Petra's id %s", got, petraID)
	}
	checkPetraConsole()
	checkFreshConsole()
}

// signedInOnly are what only a signed-in user can use: the screens' tabs, the live connection's
// badge, and toasts (all of them tell about the signed-in page).
const signedInOnly = `["#views", "#conn-state", "#toast"]`

// shownOf is a JS expression naming those of selectors (a JS array) that are on the screen.
func shownOf(selectors string) string {
	return selectors + `.filter(s => document.querySelector(s).getClientRects().length > 0).join(", ")`
}

// formsHolding names the fields that hold a value, but for the user id one logs in with.
const formsHolding = `[...document.querySelectorAll("input, textarea")].filter(e => e.id !== "login-id" && e.value !== "").map(e => "#" + e.id).join(", ")`

// toastCovers, once a toast shows, is a JSON list of the cards and header items it covers: it
// overlaps them where the header (sticky, over whatever scrolled under it) does not already.
const toastCovers = `(() => {
	const t = document.querySelector("#toast");
	if (t.hidden) return "";
	const r = t.getBoundingClientRect(), h = document.querySelector("header").getBoundingClientRect();
	const under = [...document.querySelectorAll(".card, header > *")].filter(e => {
		if (e === t || e.getClientRects().length === 0) return false;
		const o = e.getBoundingClientRect();
		const x = {left: Math.max(o.left, r.left), right: Math.min(o.right, r.right), top: Math.max(o.top, r.top), bottom: Math.min(o.bottom, r.bottom)};
		if (x.left >= x.right || x.top >= x.bottom) return false; // no overlap
		const underHeader = x.left >= h.left && x.right <= h.right && x.top >= h.top && x.bottom <= h.bottom;
		return !underHeader || e.parentElement === t.parentElement;
	});
	return JSON.stringify(under.map(e => e.id || (e.querySelector("h2") || e).textContent.slice(0, 40)));
})()`
