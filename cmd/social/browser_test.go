package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds a Chromium binary; CI installs Debian's `chromium`.
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

// TestBrowserFollowerSeesPostLive drives the page in headless Chromium with two browser contexts
// (two people, separate storage): the reader signs up, finds the author by name and follows them;
// the author publishes through the page; the reader's page shows the post live, without reloading.
func TestBrowserFollowerSeesPostLive(t *testing.T) {
	bin := chromium()
	if bin == "" {
		t.Skip("chromium not installed (Debian package `chromium`; .ci/run installs it): skipping the browser test")
	}
	t.Parallel()
	s := newStack(t)
	base, _ := s.start(t, "all")
	s.startRelay(t)

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), chromedp.ExecPath(bin),
		chromedp.Headless, chromedp.NoSandbox, chromedp.NoFirstRun,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1200, 900))
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	if err := chromedp.Do(browser); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	reader, cancelReader := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	defer cancelReader()
	author, cancelAuthor := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	defer cancelAuthor()
	// The first run on a context opens its tab, which lives as long as that run's context: open
	// both tabs without a timeout, then bound each step.
	for _, tab := range []context.Context{reader, author} {
		if err := chromedp.Do(tab); err != nil {
			t.Fatalf("open tab: %v", err)
		}
	}
	deadline := func(ctx context.Context) (context.Context, context.CancelFunc) {
		return context.WithTimeout(ctx, 30*time.Second)
	}

	signUpSteps := func(first, last string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(
			chromedp.Navigate(base+"/"),
			chromedp.WaitVisible(chromedp.CSS("#register")),
			chromedp.SendKeys(chromedp.CSS("#reg-first"), first),
			chromedp.SendKeys(chromedp.CSS("#reg-last"), last),
			chromedp.SetValue(chromedp.CSS("#reg-birthdate"), "1990-05-17"),
			chromedp.SendKeys(chromedp.CSS("#reg-city"), "Lisbon"),
			chromedp.SendKeys(chromedp.CSS("#reg-password"), "correct horse"),
			chromedp.Click(chromedp.CSS("#reg-submit")),
			chromedp.WaitVisible(chromedp.CSS("#signed-in")),
			chromedp.WaitVisible(chromedp.CSS(`#conn-state[data-state="live"]`)),
		)
	}
	authorLast := fmt.Sprintf("Poster%d", time.Now().UnixNano()%100000)

	ctx, cancel := deadline(author)
	if err := chromedp.Do(ctx, signUpSteps("Bob", authorLast)); err != nil {
		t.Fatalf("author signs up: %v", err)
	}
	cancel()

	ctx, cancel = deadline(reader)
	err := chromedp.Do(ctx,
		signUpSteps("Alice", "Reader"),
		chromedp.SendKeys(chromedp.CSS("#search-first"), "Bob"),
		chromedp.SendKeys(chromedp.CSS("#search-last"), authorLast),
		chromedp.Click(chromedp.CSS("#search-submit")),
		chromedp.Click(chromedp.CSS("#search-results button.follow"), chromedp.NodeVisible),
		chromedp.Poll[chromedp.Void](`document.querySelector("#search-results button.follow").textContent === "Unfollow"`),
	)
	cancel()
	if err != nil {
		t.Fatalf("reader follows the author: %v", err)
	}

	const text = "Fresh from the oven — live in your feed"
	ctx, cancel = deadline(author)
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#post-text"), text),
		chromedp.Click(chromedp.CSS("#post-submit")),
		chromedp.Poll[chromedp.Void](`document.querySelector("#post-status").textContent.startsWith("Published")`),
	)
	cancel()
	if err != nil {
		t.Fatalf("author posts: %v (page says %q)", err, pageText(author))
	}

	ctx, cancel = deadline(reader)
	defer cancel()
	var shot []byte
	err = chromedp.Do(ctx,
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`[...document.querySelectorAll("#feed li .text")].some(e => e.textContent === %q)`, text)),
		chromedp.Poll[chromedp.Void](`document.querySelector("#conn-state").dataset.state === "live"`),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			var err error
			shot, err = chromedp.FullScreenshot(100)(ctx, tg)
			return err
		}),
	)
	if err != nil {
		t.Fatalf("the reader's page does not show the post live: %v", err)
	}
	path := filepath.Join(artifactDir(t), "browser-feed-live.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the reader's page: %s", path)
}

// pageText is what the page shows in its status places, for failure messages.
func pageText(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`[document.querySelector("#post-status").textContent, document.querySelector("#toast").textContent, document.querySelector("#conn-state").textContent].join(" | ")`))
	if err != nil {
		return err.Error()
	}
	return v
}
