package http

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// OpenAPI is the OpenAPI 3 document of the REST API, served at /openapi.yaml. A test checks that it
// parses and lists exactly the routes the server registers.
//
//go:embed openapi.yaml
var OpenAPI []byte

func serveOpenAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", OpenAPI)
}
