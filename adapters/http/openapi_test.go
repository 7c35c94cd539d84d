package http_test

import (
	"context"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// mountedByMain are served by routes that cmd/social mounts on the API server.
var mountedByMain = map[string]bool{"GET /metrics": true}

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	res := api.do("GET", "/openapi.yaml", "", nil)
	if res.Status != 200 {
		t.Fatalf("/openapi.yaml: %d", res.Status)
	}
	doc, err := openapi3.NewLoader().LoadFromData(res.Body)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("validate: %v", err)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	param := regexp.MustCompile(`:(\w+)`)
	served := map[string]bool{}
	for _, r := range api.api.Routes() {
		served[param.ReplaceAllString(r, "{$1}")] = true
	}
	for r := range served {
		if !documented[r] {
			t.Errorf("route %s is served but not documented", r)
		}
	}
	for r := range documented {
		if !served[r] && !mountedByMain[r] {
			t.Errorf("route %s is documented but not served", r)
		}
	}
	if t.Failed() {
		t.Logf("served: %v", keys(served))
	}
}

func keys(m map[string]bool) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		if res := api.do("GET", path, "", nil); res.Status != 200 {
			t.Errorf("%s = %d %s", path, res.Status, res.Body)
		}
	}
	expectError(t, api.do("GET", "/no/such/route", "", nil), 404)
}
