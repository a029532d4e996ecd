package oci

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// The fake OCI's wire format: request checks, pages, JSON answers and errors.

func (f *fakeOCI) checkCompartment(w http.ResponseWriter, r *http.Request) bool {
	if got := r.URL.Query().Get("compartmentId"); got != f.compartment {
		f.reject(w, r, fmt.Sprintf("compartmentId %q, want %q", got, f.compartment))
		return false
	}
	return true
}

// decode reads a JSON body the SDK sent with its content type, and keeps
// a copy for the test to look at.
func (f *fakeOCI) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		f.reject(w, r, "content type "+ct)
		return false
	}
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		f.reject(w, r, "bad JSON: "+err.Error())
		return false
	}
	f.mu.Lock()
	f.bodies[r.Pattern] = append(f.bodies[r.Pattern], v)
	f.mu.Unlock()
	return true
}

// reject answers 400 to a request that breaks the API's rules, and fails
// the test: the provider sent it. It takes no lock, so handlers holding
// f.mu may call it.
func (f *fakeOCI) reject(w http.ResponseWriter, r *http.Request, problem string) {
	f.t.Errorf("fake OCI: %s %s: %s", r.Method, r.URL.Path, problem)
	writeError(w, http.StatusBadRequest, "InvalidParameter", problem)
}

// writePage answers one page of items; the page token is the offset.
func (f *fakeOCI) writePage(w http.ResponseWriter, r *http.Request, items any) {
	all, _ := json.Marshal(items)
	var list []json.RawMessage
	_ = json.Unmarshal(all, &list)
	from := 0
	if tok := r.URL.Query().Get("page"); tok != "" {
		var err error
		if from, err = strconv.Atoi(tok); err != nil || from > len(list) {
			f.reject(w, r, "bad page token "+tok)
			return
		}
	}
	to := min(from+f.pageSize, len(list))
	if to < len(list) {
		w.Header().Set("opc-next-page", strconv.Itoa(to))
	}
	page := list[from:to]
	if page == nil {
		page = []json.RawMessage{}
	}
	writeJSON(w, http.StatusOK, page)
}

func (f *fakeOCI) writePool(w http.ResponseWriter, p *fakePool) {
	w.Header().Set("etag", etag(p))
	writeJSON(w, http.StatusOK, f.wirePool(p))
}

func etag(p *fakePool) string { return fmt.Sprintf("pool-etag-%d", p.etag) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("opc-request-id", "fake-request")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]string{"code": code, "message": message})
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

func check(ok bool, format string, args ...any) string {
	if ok {
		return ""
	}
	return fmt.Sprintf(format, args...)
}

func firstProblem(problems ...string) string {
	for _, p := range problems {
		if p != "" {
			return p
		}
	}
	return ""
}
