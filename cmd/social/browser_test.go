package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"
	"github.com/socialnet/social/internal/wait"
)

// chromium finds a Chromium binary; CI installs Debian's `chromium` (scripts/services).
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// artifactDir is $ARTIFACTS_DIR (CI keeps it) or a temporary directory that is logged.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("ARTIFACTS_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// browser is one headless Chromium; each person is a browser context of it (own storage, as a
// separate browser would have).
type browser struct {
	t   *testing.T
	ctx context.Context
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	bin := chromium()
	if bin == "" {
		t.Skip("chromium not installed (Debian package `chromium`; scripts/services installs it): skipping the browser test")
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), chromedp.ExecPath(bin),
		chromedp.Headless, chromedp.NoSandbox, chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1200, 1000))
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	return &browser{t: t, ctx: ctx}
}

// person opens a tab in a new browser context. The first run on a context opens its tab, which
// lives as long as that run's context: open it without a timeout, then bound each step.
func (b *browser) person() context.Context {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("open tab: %v", err)
	}
	return ctx
}

// do runs steps on a tab within 30 s, failing the test with what the page shows.
func do(t *testing.T, tab context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	// Generous: the package's other tests run beside these on two cores, under -race.
	ctx, cancel := context.WithTimeout(tab, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v (page says %q)", what, err, pageText(tab))
	}
}

// eval returns a JS expression's value on a tab.
func eval[T any](t *testing.T, tab context.Context, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// pollValue waits (up to 60 s) until a JS expression is truthy on a tab, and returns its value.
func pollValue[T any](t *testing.T, tab context.Context, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Poll[T](expr))
	if err != nil {
		t.Fatalf("wait for %s: %v (page says %q)", expr, err, pageText(tab))
	}
	return v
}

// consoleErrors records the errors a tab's console shows from now on (failed loads, as a
// favicon.ico 404, included); check fails the test with each.
func consoleErrors(t *testing.T, tab context.Context) (check func()) {
	ctx, cancel := context.WithCancel(tab)
	messages := chromedp.Console(ctx)
	var mu sync.Mutex
	var errs []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("%s (%s)", m, m.URL))
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(cancel)
	return func() {
		t.Helper()
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, e := range errs {
			t.Errorf("console: %s", e)
		}
	}
}

// screenshot saves what a tab shows as name in artifactDir.
func screenshot(t *testing.T, tab context.Context, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 30*time.Second)
	defer cancel()
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(artifactDir(t), name)
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// script runs a JS statement on the page.
func script(js string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool]("("+js+", true)")(ctx, tg)
		return err
	})
}

func poll(expr string) chromedp.Action[chromedp.Void] { return chromedp.Poll[chromedp.Void](expr) }

func signUpSteps(base, first, last, password string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#register")),
		chromedp.SendKeys(chromedp.CSS("#reg-first"), first),
		chromedp.SendKeys(chromedp.CSS("#reg-last"), last),
		chromedp.SetValue(chromedp.CSS("#reg-birthdate"), "1990-05-17"),
		chromedp.SendKeys(chromedp.CSS("#reg-city"), "Lisbon"),
		chromedp.SendKeys(chromedp.CSS("#reg-password"), password),
		chromedp.Click(chromedp.CSS("#reg-submit")),
		chromedp.WaitVisible(chromedp.CSS("#signed-in")),
		chromedp.WaitVisible(chromedp.CSS(`#conn-state[data-state="live"]`)),
		poll(`document.querySelector("#me-id").textContent.length === 36`),
	)
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// myID is the user id the page shows while signed in (issue 14, item 3).
func myID(t *testing.T, tab context.Context, who string) string {
	t.Helper()
	id := eval[string](t, tab, `document.querySelector("#me-id").textContent`)
	if !uuidRE.MatchString(id) {
		t.Fatalf("%s's page shows %q as the user id", who, id)
	}
	return id
}

func searchSteps(first, last string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.SetValue(chromedp.CSS("#search-first"), first),
		chromedp.SetValue(chromedp.CSS("#search-last"), last),
		chromedp.Click(chromedp.CSS("#search-submit")),
		chromedp.WaitVisible(chromedp.CSS("#search-results button.follow")),
	)
}

// TestBrowserFollowerSeesPostLive drives the page in headless Chromium, with each person in a
// browser context of their own (separate storage, as separate browsers): the reader signs up,
// finds the author by name and follows them; the author publishes through the page; the reader's
// page shows the post live, without reloading. Along the way, what a newcomer relies on (issue
// 14): your user id shown with a copy button and kept in the login field after log-out; follow
// state read from the server in another browser; a whitespace-only post refused with a reason;
// your own post on your page; post times that survive a reload.
func TestBrowserFollowerSeesPostLive(t *testing.T) {
	t.Parallel()
	b := newBrowser(t)
	s := newStack(t)
	base, _ := s.start(t, "all")
	reader, author, elsewhere := b.person(), b.person(), b.person()
	authorLast := fmt.Sprintf("Poster%d", time.Now().UnixNano()%100000)

	do(t, author, "author signs up", signUpSteps(base, "Bob", authorLast, "correct horse"))
	authorID := myID(t, author, "the author")
	do(t, author, "author copies their id",
		chromedp.Click(chromedp.CSS("#copy-id")),
		poll(`["Copied", "Selected: press Ctrl+C"].includes(document.querySelector("#copy-id").textContent)`))

	do(t, reader, "reader signs up and follows the author",
		signUpSteps(base, "Alice", "Reader", "reader's secret"),
		searchSteps("Bob", authorLast),
		chromedp.Click(chromedp.CSS("#search-results button.follow")),
		poll(`document.querySelector("#search-results button.follow").textContent === "Unfollow"`),
		poll(fmt.Sprintf(`!!document.querySelector('#following li[data-user-id=%q]')`, authorID)))
	readerID := myID(t, reader, "the reader")

	// Another browser (empty storage): the reader logs in there, and the page knows whom they
	// follow from the server.
	do(t, elsewhere, "the reader logs in from another browser",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#login")),
		chromedp.SendKeys(chromedp.CSS("#login-id"), readerID),
		chromedp.SendKeys(chromedp.CSS("#login-password"), "reader's secret"),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#signed-in")),
		poll(fmt.Sprintf(`!!document.querySelector('#following li[data-user-id=%q]')`, authorID)),
		searchSteps("Bob", authorLast),
		poll(`document.querySelector("#search-results button.follow").textContent === "Unfollow"`))

	// A post of spaces and line breaks: not published, and the page says why.
	do(t, author, "author tries a blank post",
		chromedp.SendKeys(chromedp.CSS("#post-text"), "   \n  "),
		chromedp.Click(chromedp.CSS("#post-submit")),
		poll(`document.querySelector("#post-status").textContent.startsWith("Not published: ")`))
	if why := eval[string](t, author, `document.querySelector("#post-status").textContent`); len(why) < len("Not published: ")+10 {
		t.Errorf("blank post: the page says only %q", why)
	}
	if n := s.db.Count(t, "posts"); n != 0 {
		t.Errorf("a blank post reached the API: %d posts", n)
	}

	const text = "Fresh from the oven — live in your feed"
	do(t, author, "author posts",
		script(`document.querySelector("#post-text").value = ""`),
		chromedp.SendKeys(chromedp.CSS("#post-text"), text),
		chromedp.Click(chromedp.CSS("#post-submit")),
		poll(`document.querySelector("#post-status").textContent.startsWith("Published")`),
		// Your own post shows on your page.
		poll(fmt.Sprintf(`[...document.querySelectorAll("#feed li.mine .text")].some(e => e.textContent === %q)`, text)))

	var shot []byte
	do(t, reader, "the reader's page shows the post live",
		poll(fmt.Sprintf(`[...document.querySelectorAll("#feed li .text")].some(e => e.textContent === %q)`, text)),
		poll(`document.querySelector("#conn-state").dataset.state === "live"`),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			var err error
			shot, err = chromedp.FullScreenshot(100)(ctx, tg)
			return err
		}))
	path := filepath.Join(artifactDir(t), "browser-feed-live.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the reader's page: %s", path)

	// The post's time: from the live frame first, from GET /post/feed after a reload; the same.
	timeOf := `document.querySelector("#feed li[data-post-id]").dataset.createdAt`
	live := eval[string](t, reader, timeOf)
	do(t, reader, "reader reloads",
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS("#signed-in")),
		poll(fmt.Sprintf(`[...document.querySelectorAll("#feed li .text")].some(e => e.textContent === %q)`, text)))
	reloaded := eval[string](t, reader, timeOf)
	liveAt, err1 := time.Parse(time.RFC3339, live)
	restAt, err2 := time.Parse(time.RFC3339, reloaded)
	if err1 != nil || err2 != nil || !liveAt.Equal(restAt) {
		t.Errorf("post time: live frame %q, after reload %q: want the same RFC3339 time", live, reloaded)
	}
	if meta := eval[string](t, reader, `document.querySelector("#feed li[data-post-id] .meta").textContent`); !strings.Contains(meta, "Bob "+authorLast+" · ") {
		t.Errorf("after reload the post says %q: want its author and time", meta)
	}

	// Away and back: the posts made meanwhile come by resume (?since=), several frames in one
	// websocket message (the page asks for ?batch=lines). The page must read every line: its
	// resume position then moves to the last post's. (The feed itself also reloads through
	// REST on return, so the position is what shows whether the frames were read.)
	do(t, reader, "reader leaves", chromedp.Navigate("about:blank"))
	for i := range 3 {
		away := fmt.Sprintf("While you were away, %d", i)
		do(t, author, "author posts again",
			script(`document.querySelector("#post-text").value = ""`),
			chromedp.SendKeys(chromedp.CSS("#post-text"), away),
			chromedp.Click(chromedp.CSS("#post-submit")),
			poll(fmt.Sprintf(`[...document.querySelectorAll("#feed li.mine .text")].some(e => e.textContent === %q)`, away)))
	}
	wait.For(t, 20*time.Second, "the three posts made while the reader was away to be relayed", func() bool {
		return s.db.Count(t, "outbox", "status = 'relayed'") == 4
	})
	var newest int64
	if err := s.db.Pool.QueryRow(context.Background(), "SELECT max(position) FROM outbox").Scan(&newest); err != nil {
		t.Fatal(err)
	}
	do(t, reader, "reader comes back and resumes",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#signed-in")),
		poll(fmt.Sprintf(`localStorage.getItem(%q) === "%d"`, "social.since."+readerID, newest)))

	// More posts than a page holds (50) in each of the two lists the page merges, older than the
	// rest and interleaved in time: the author's 70 (the reader's feed) and the reader's own 60.
	// "Show older posts" pages each list on by the cursor of its Link header, to the oldest, and
	// then hides; at every step the feed shows the newest posts of both lists with none skipped
	// (a list further back waits for the other).
	s.db.Exec(t, `INSERT INTO posts (id, author_user_id, text, created_at, updated_at, version)
		SELECT (lpad(to_hex(1600000000000 + 2 * k + w), 12, '0') || '70008000' || lpad(k::text, 12, '0'))::uuid,
			(ARRAY[$1, $2]::uuid[])[w + 1], (ARRAY['older ', 'mine '])[w + 1] || k, now() - interval '1 day', now(), 1
		FROM generate_series(0, 1) w, generate_series(1, 70 - 10 * w) k`, authorID, readerID)
	rows, err := s.db.Pool.Query(context.Background(), `SELECT id::text FROM posts WHERE author_user_id IN ($1, $2) ORDER BY id DESC`,
		authorID, readerID)
	if err != nil {
		t.Fatal(err)
	}
	want, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	shownIDs := `[...document.querySelectorAll("#feed li[data-post-id]")].map(e => e.dataset.postId)`
	do(t, reader, "reader reloads: the newest page of each list",
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS("#signed-in")),
		chromedp.WaitVisible(chromedp.CSS("#feed-more")))
	for clicks := 0; ; clicks++ {
		shown := eval[[]string](t, reader, shownIDs)
		if len(shown) > len(want) || !slices.Equal(shown, want[:len(shown)]) {
			t.Fatalf("after %d clicks on Show older the feed shows %d posts that are not the newest %d of both lists, newest first",
				clicks, len(shown), len(shown))
		}
		if eval[bool](t, reader, `document.querySelector("#feed-more").hidden`) {
			if len(shown) != len(want) || clicks != 1 {
				t.Errorf("Show older hid after %d clicks with %d posts shown, want 1 click and all %d", clicks, len(shown), len(want))
			}
			break
		}
		if clicks == 3 {
			t.Fatalf("Show older still shows after %d clicks, %d posts shown of %d", clicks, len(shown), len(want))
		}
		do(t, reader, "reader shows older posts",
			chromedp.Click(chromedp.CSS("#feed-more")),
			poll(fmt.Sprintf(`!document.querySelector("#feed-more").disabled && (%s.length > %d || document.querySelector("#feed-more").hidden)`,
				shownIDs, len(shown))))
	}

	// Log out: the login field keeps the id.
	do(t, reader, "reader logs out",
		chromedp.Click(chromedp.CSS("#logout")),
		chromedp.WaitVisible(chromedp.CSS("#login")))
	if got := eval[string](t, reader, `document.querySelector("#login-id").value`); got != readerID {
		t.Errorf("after log-out the login field holds %q, want the reader's id %s", got, readerID)
	}
}

// TestBrowserSessionExpiresAfterRestartWithAnotherSecret: `social all` restarts with another
// JWT_SECRET (as plain `make run` does on every start). The page's websocket drops; its reconnect
// is refused (the browser sees only close 1006); the page finds out through the REST API that
// its token is no longer accepted and says "session expired" with the login field filled, instead
// of "reconnecting" for ever (issue 14, item 2).
func TestBrowserSessionExpiresAfterRestartWithAnotherSecret(t *testing.T) {
	t.Parallel()
	b := newBrowser(t)
	s := newStack(t)
	base, stop := s.start(t, "all")
	tab := b.person()
	do(t, tab, "sign up", signUpSteps(base, "Sam", "Restart", "correct horse"))
	id := myID(t, tab, "the user")

	stop()
	s.extra = map[string]string{"HTTP_ADDR": strings.TrimPrefix(base, "http://"),
		"JWT_SECRET": "another-secret-another-secret-another-1"}
	if again, _ := s.start(t, "all"); again != base {
		t.Fatalf("restarted on %s, want %s", again, base)
	}
	do(t, tab, "the page notices",
		chromedp.WaitVisible(chromedp.CSS("#login")),
		poll(`document.querySelector("#session-notice").textContent.startsWith("Session expired")`))
	if got := eval[string](t, tab, `document.querySelector("#login-id").value`); got != id {
		t.Errorf("login field holds %q, want %s", got, id)
	}
	if state := eval[string](t, tab, `document.querySelector("#conn-state").dataset.state`); state != "offline" {
		t.Errorf("connection badge says %q after the session ended", state)
	}
	// Signed out by expiry as by the button (issue #25, page items 3 and 4): nothing of the
	// session shows, and no form holds what the user typed.
	if shown := eval[string](t, tab, shownOf(signedInOnly)); shown != "" {
		t.Errorf("after the session expired, the page shows %s", shown)
	}
	if kept := eval[string](t, tab, formsHolding); kept != "" {
		t.Errorf("after the session expired, these fields still hold what the user typed: %s", kept)
	}
	// Logging in again works, and the notice goes.
	do(t, tab, "log in again",
		chromedp.SendKeys(chromedp.CSS("#login-password"), "correct horse"),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS(`#conn-state[data-state="live"]`)),
		poll(`document.querySelector("#session-notice").hidden`))
}

// pageText is what the page shows in its status places, for failure messages.
func pageText(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`["#post-status", "#toast", "#conn-state", "#session-notice", "#feed-empty"].map(s => { const e = document.querySelector(s); return e ? e.textContent : "" }).join(" | ")`))
	if err != nil {
		return err.Error()
	}
	return v
}

// TestBrowserDialogs drives the Dialogs screen in two browsers: Anna finds Boris by name and
// writes to him; Boris, on his Dialogs screen, sees her appear with a new message, opens the
// conversation; Anna's next message and his reply then arrive live in the other browser, without
// a reload (a marker set on each page survives). A blank message is refused with a reason.
func TestBrowserDialogs(t *testing.T) {
	t.Parallel()
	b := newBrowser(t)
	s := newStack(t)
	base, _ := s.start(t, "all")
	anna, boris := b.person(), b.person()
	borisLast := fmt.Sprintf("Talker%d", time.Now().UnixNano()%100000)
	do(t, boris, "Boris signs up", signUpSteps(base, "Boris", borisLast, "boris's secret"),
		chromedp.Click(chromedp.CSS(`#views button[data-view="dialogs"]`)),
		chromedp.WaitVisible(chromedp.CSS("#dialog-search")),
		script(`window.notReloaded = true`))
	do(t, anna, "Anna signs up and finds Boris on the Dialogs screen", signUpSteps(base, "Anna", "Writer", "anna's secret"),
		chromedp.Click(chromedp.CSS(`#views button[data-view="dialogs"]`)),
		chromedp.SetValue(chromedp.CSS("#dialog-search-first"), "Boris"),
		chromedp.SetValue(chromedp.CSS("#dialog-search-last"), borisLast),
		chromedp.Click(chromedp.CSS("#dialog-search-submit")),
		chromedp.WaitVisible(chromedp.CSS("#dialog-search-results button.message")),
		chromedp.Click(chromedp.CSS("#dialog-search-results button.message")),
		chromedp.WaitVisible(chromedp.CSS("#dialog-compose")),
		poll(`document.querySelector("#dialog-title").textContent === "Dialog with Boris `+borisLast+`"`),
		script(`window.notReloaded = true`))
	annaID := myID(t, anna, "Anna")

	do(t, anna, "Anna tries a blank message",
		chromedp.SendKeys(chromedp.CSS("#dialog-text"), "  \n "),
		chromedp.Click(chromedp.CSS("#dialog-send")),
		poll(`document.querySelector("#dialog-status").textContent.startsWith("Not sent: ")`))
	do(t, anna, "Anna writes to Boris",
		script(`document.querySelector("#dialog-text").value = ""`),
		chromedp.SendKeys(chromedp.CSS("#dialog-text"), "Hello Boris <3"),
		chromedp.Click(chromedp.CSS("#dialog-send")),
		// Her own message comes back live.
		poll(`[...document.querySelectorAll("#dialog-messages li.mine .text")].some(e => e.textContent === "Hello Boris <3")`))
	if n := s.db.Count(t, "dialog_messages"); n != 1 {
		t.Errorf("%d messages stored, want 1 (the blank one must not be)", n)
	}

	do(t, boris, "Boris sees Anna write to him, and opens the dialog",
		poll(fmt.Sprintf(`!!document.querySelector('#dialog-peers li.unread[data-user-id=%q]')`, annaID)),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#dialog-peers li[data-user-id=%q] button.open-dialog`, annaID))),
		poll(`[...document.querySelectorAll("#dialog-messages li.theirs .text")].some(e => e.textContent === "Hello Boris <3")`))

	do(t, anna, "Anna writes again",
		chromedp.SendKeys(chromedp.CSS("#dialog-text"), "Are you there?"),
		chromedp.Click(chromedp.CSS("#dialog-send")))
	do(t, boris, "Boris's page shows it live, and he replies",
		poll(`[...document.querySelectorAll("#dialog-messages li.theirs .text")].some(e => e.textContent === "Are you there?")`),
		poll(`window.notReloaded === true`),
		chromedp.SendKeys(chromedp.CSS("#dialog-text"), "Yes, here!"),
		chromedp.Click(chromedp.CSS("#dialog-send")),
		poll(`[...document.querySelectorAll("#dialog-messages li.mine .text")].some(e => e.textContent === "Yes, here!")`))
	var shot []byte
	do(t, anna, "Anna's page shows the reply live, in order",
		poll(`[...document.querySelectorAll("#dialog-messages li .text")].map(e => e.textContent).join("|") === "Hello Boris <3|Are you there?|Yes, here!"`),
		poll(`window.notReloaded === true`),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			var err error
			shot, err = chromedp.FullScreenshot(100)(ctx, tg)
			return err
		}))
	path := filepath.Join(artifactDir(t), "browser-dialogs.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of Anna's dialog: %s", path)
	// The feed still gets post frames on the same socket.
	do(t, boris, "Boris's feed still works", chromedp.Click(chromedp.CSS(`#views button[data-view="home"]`)),
		chromedp.WaitVisible(chromedp.CSS("#compose")))
}
