package websocket

import (
	"fmt"
	"slices"
	"strings"

	"github.com/socialnet/social/domain"
)

// defaultKinds is what a socket that names no ?types= receives: post frames only, the OTUS
// AsyncAPI payload, so a client written against it never sees a frame it cannot read
// (design.md §4). Shared by every such socket.
var defaultKinds = []string{domain.KindPost}

// parseKinds reads ?types= (comma-separated, the parameter may repeat): the frame kinds a socket
// forwards (domain.FrameKinds). Absent means defaultKinds; an unknown or empty name is an error
// for a 400. The result holds at most the known kinds, whatever the client sends.
func parseKinds(values []string) ([]string, error) {
	if len(values) == 0 {
		return defaultKinds, nil
	}
	var kinds []string
	for _, v := range values {
		for k := range strings.SplitSeq(v, ",") {
			if !domain.IsFrameKind(k) {
				return nil, fmt.Errorf("types: %q is not a frame type; ask for a comma-separated list of %s",
					k, strings.Join(domain.FrameKinds(), ", "))
			}
			if !slices.Contains(kinds, k) {
				kinds = append(kinds, k)
			}
		}
	}
	slices.Sort(kinds)
	return kinds, nil
}
