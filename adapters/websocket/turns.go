package websocket

import (
	"context"
	"sync"
)

// turns lets one resume at a time run for each user on this instance (design.md §4): a user's
// sockets that resume together (every tab after a restart, or a client reconnecting many sockets
// with since=0 to make the database read the same pages over and over) read PostgreSQL one after
// another, so a user costs at most one resume's reads at a time. Refills take the same turns.
//
// A user's entry lives while a resume holds or waits for the turn; only registered sockets wait,
// so the map holds at most the instance's sockets.
type turns struct {
	mu    sync.Mutex
	users map[string]*turn
}

type turn struct {
	held chan struct{} // full while a resume runs; waiters block sending to it (in arrival order)
	refs int           // the holder and the waiters
}

// take waits until user's turn is free and takes it, or returns ctx's error. The caller calls
// release once its resume is done.
func (t *turns) take(ctx context.Context, user string) (release func(), err error) {
	t.mu.Lock()
	if t.users == nil {
		t.users = make(map[string]*turn)
	}
	u := t.users[user]
	if u == nil {
		u = &turn{held: make(chan struct{}, 1)}
		t.users[user] = u
	}
	u.refs++
	t.mu.Unlock()
	select {
	case u.held <- struct{}{}:
		return func() {
			<-u.held
			t.drop(user, u)
		}, nil
	case <-ctx.Done():
		t.drop(user, u)
		return nil, ctx.Err()
	}
}

func (t *turns) drop(user string, u *turn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if u.refs--; u.refs == 0 {
		delete(t.users, user)
	}
}
