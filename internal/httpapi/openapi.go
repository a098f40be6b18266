package httpapi

import (
	_ "embed"
	"net/http"
	"strconv"
)

// OpenAPIDocument is the OpenAPI 3.1 document of the API, served at
// /v1/openapi.json.
//
//go:embed openapi.json
var OpenAPIDocument []byte

func serveOpenAPI(w http.ResponseWriter, r *http.Request, _ string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(OpenAPIDocument)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(OpenAPIDocument)
	}
}
