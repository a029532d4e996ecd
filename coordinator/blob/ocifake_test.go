package blob

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/internal/ocitest"
)

// fakeObjectStorage is an in-memory OCI Object Storage bucket that speaks
// the real wire format: the SDK's paths (/n/NS/b/BUCKET/o/OBJECT, /u/ for
// multipart uploads, /p/ for pre-authenticated requests), the PARs' own
// /p/TOKEN/... paths, camelCase JSON, paging, and JSON errors. Every
// request but a PAR's must be signed with the test's key; one that is not
// gets a 401 and fails the test. Multipart uploads keep their rules:
// parts go to an open upload, a commit lists each part with its ETag, an
// abort removes the upload and its parts.
type fakeObjectStorage struct {
	t                 *testing.T
	srv               *httptest.Server
	key               *ocitest.Key
	namespace, bucket string
	pageSize          int

	mu        sync.Mutex
	skew      time.Duration // added to the real clock: how a test ages PARs
	seq       int
	objects   map[string]*fakeObject
	uploads   map[string]*fakeUpload // by upload id
	pars      map[string]*fakePAR    // by id
	calls     []string               // "METHOD /path" of every request let in
	rejectsOK bool                   // the test sends bad requests: do not fail it
	rejected  int
}

type fakeObject struct {
	data      []byte
	sha256    string // base64, when the upload asked for it
	etag      string
	multipart bool
	modified  time.Time
}

type fakeUpload struct {
	object string
	parts  map[int]fakePart
}

type fakePart struct {
	data []byte
	etag string
}

type fakePAR struct {
	id, name, token, object, access string
	created, expires                time.Time
}

func newFakeObjectStorage(t *testing.T) *fakeObjectStorage {
	f := &fakeObjectStorage{
		t: t, key: ocitest.SharedKey(t), namespace: "monkeyns", bucket: "blobs",
		pageSize: 2, // small, so every list crosses pages
		objects:  map[string]*fakeObject{}, uploads: map[string]*fakeUpload{}, pars: map[string]*fakePAR{},
	}
	b := "/n/{ns}/b/{bucket}"
	mux := http.NewServeMux()
	mux.HandleFunc("HEAD "+b, f.inBucket(func(w http.ResponseWriter, r *http.Request) {}))
	mux.HandleFunc("GET "+b+"/o", f.inBucket(f.listObjects))
	mux.HandleFunc("PUT "+b+"/o/{object...}", f.inBucket(func(w http.ResponseWriter, r *http.Request) { f.store(w, r, r.PathValue("object")) }))
	mux.HandleFunc("GET "+b+"/o/{object...}", f.inBucket(func(w http.ResponseWriter, r *http.Request) { f.read(w, r, r.PathValue("object")) }))
	mux.HandleFunc("DELETE "+b+"/o/{object...}", f.inBucket(f.deleteObject))
	mux.HandleFunc("POST "+b+"/actions/renameObject", f.inBucket(f.renameObject))
	mux.HandleFunc("POST "+b+"/u", f.inBucket(f.createUpload))
	mux.HandleFunc("PUT "+b+"/u/{object...}", f.inBucket(f.uploadPart))
	mux.HandleFunc("POST "+b+"/u/{object...}", f.inBucket(f.commitUpload))
	mux.HandleFunc("DELETE "+b+"/u/{object...}", f.inBucket(f.abortUpload))
	mux.HandleFunc("POST "+b+"/p", f.inBucket(f.createPAR))
	mux.HandleFunc("GET "+b+"/p", f.inBucket(f.listPARs))
	mux.HandleFunc("DELETE "+b+"/p/{id}", f.inBucket(f.deletePAR))
	mux.HandleFunc("/p/{token}/n/{ns}/b/{bucket}/o/{object...}", f.inBucket(f.usePAR))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		f.t.Errorf("fake Object Storage: unexpected request %s %s", r.Method, r.URL)
		ociFail(w, http.StatusNotFound, "NotAuthorizedOrNotFound", "no such operation")
	})
	f.srv = httptest.NewServer(f.gate(mux))
	t.Cleanup(f.srv.Close)
	return f
}

// open is a store on the fake, signing with the test's key.
func (f *fakeObjectStorage) open(t *testing.T) *OCI {
	s, err := OpenOCI(context.Background(), OCIConfig{
		Namespace: f.namespace, Bucket: f.bucket, ConfigurationProvider: f.key.Credentials(), Endpoint: f.srv.URL,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.now = f.now
	return s
}

func (f *fakeObjectStorage) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return time.Now().Add(f.skew)
}

// gate checks the signature of every request but a PAR's, and logs it.
func (f *fakeObjectStorage) gate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/p/") {
			var body []byte
			unhashed := binaryBody(r)
			if !unhashed { // small JSON: read here to check its hash
				var err error
				if body, err = io.ReadAll(r.Body); err != nil {
					f.t.Errorf("fake Object Storage: reading the body: %v", err)
					return
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
			}
			if err := f.key.Verify(r, body, unhashed); err != nil {
				f.mu.Lock()
				f.rejected++
				ok := f.rejectsOK
				f.mu.Unlock()
				if !ok {
					f.t.Errorf("fake Object Storage: %s %s: bad signature: %v", r.Method, r.URL.Path, err)
				}
				ociFail(w, http.StatusUnauthorized, "NotAuthenticated", err.Error())
				return
			}
		}
		f.mu.Lock()
		f.calls = append(f.calls, r.Method+" "+r.URL.Path)
		f.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

// binaryBody tells the requests whose bodies the SDK sends unhashed:
// PutObject and UploadPart, PUTs under /o/ and /u/.
func binaryBody(r *http.Request) bool {
	return r.Method == http.MethodPut && (strings.Contains(r.URL.Path, "/o/") || strings.Contains(r.URL.Path, "/u/"))
}

// inBucket refuses any namespace or bucket but the fake's, and holds the
// lock for the handler.
func (f *fakeObjectStorage) inBucket(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("ns") != f.namespace || r.PathValue("bucket") != f.bucket {
			ociFail(w, http.StatusNotFound, "BucketNotFound", "no bucket "+r.PathValue("ns")+"/"+r.PathValue("bucket"))
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		h(w, r)
	}
}

// --- objects

// store is PutObject, also through a PAR: the whole body, checked against
// the Content-MD5 and opc-content-sha256 it came with.
func (f *fakeObjectStorage) store(w http.ResponseWriter, r *http.Request, name string) {
	data, sum, ok := f.checkedBody(w, r)
	if !ok {
		return
	}
	f.seq++
	o := &fakeObject{data: data, sha256: sum, etag: fmt.Sprintf("etag-%d", f.seq), modified: time.Now().UTC().Truncate(time.Second)}
	f.objects[name] = o
	md := md5.Sum(data)
	w.Header().Set("Etag", o.etag)
	w.Header().Set("Last-Modified", o.modified.Format(http.TimeFormat))
	w.Header().Set("Opc-Content-Md5", base64.StdEncoding.EncodeToString(md[:]))
	if sum != "" {
		w.Header().Set("Opc-Content-Sha256", sum)
	}
}

// checkedBody reads an upload's body and checks it as Object Storage
// does: Content-Length is required, a Content-MD5 or opc-content-sha256
// must match, and a sha256 is kept only when opc-checksum-algorithm asks
// for one.
func (f *fakeObjectStorage) checkedBody(w http.ResponseWriter, r *http.Request) (data []byte, sha string, ok bool) {
	if r.ContentLength < 0 {
		ociFail(w, http.StatusLengthRequired, "MissingContentLength", "Content-Length is required")
		return nil, "", false
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		ociFail(w, http.StatusBadRequest, "InvalidBody", err.Error())
		return nil, "", false
	}
	md := md5.Sum(data)
	if want := r.Header.Get("Content-Md5"); want != "" && want != base64.StdEncoding.EncodeToString(md[:]) {
		ociFail(w, http.StatusBadRequest, "UnmatchedContentMD5", "the computed MD5 of the request body does not match the Content-MD5 header")
		return nil, "", false
	}
	alg, want := r.Header.Get("Opc-Checksum-Algorithm"), r.Header.Get("Opc-Content-Sha256")
	switch {
	case alg == "" && want == "":
		return data, "", true
	case alg != "SHA256":
		ociFail(w, http.StatusBadRequest, "InvalidParameter", fmt.Sprintf("opc-checksum-algorithm %q with opc-content-sha256", alg))
		return nil, "", false
	}
	sum := sha256.Sum256(data)
	got := base64.StdEncoding.EncodeToString(sum[:])
	if want != "" && want != got {
		ociFail(w, http.StatusBadRequest, "UnmatchedContentSha256", "the computed SHA256 of the request body does not match the opc-content-sha256 header")
		return nil, "", false
	}
	return data, got, true
}

// read is GetObject and HeadObject.
func (f *fakeObjectStorage) read(w http.ResponseWriter, r *http.Request, name string) {
	o, ok := f.objects[name]
	if !ok {
		ociFail(w, http.StatusNotFound, "ObjectNotFound", "no object "+name)
		return
	}
	if m := r.Header.Get("If-Match"); m != "" && m != o.etag {
		ociFail(w, http.StatusPreconditionFailed, "IfMatchFailed", "the object's ETag is "+o.etag)
		return
	}
	h := w.Header()
	h.Set("Content-Length", strconv.Itoa(len(o.data)))
	h.Set("Etag", o.etag)
	h.Set("Last-Modified", o.modified.Format(http.TimeFormat))
	if !o.multipart { // as OCI: no whole-object digests for a multipart one
		md := md5.Sum(o.data)
		h.Set("Content-Md5", base64.StdEncoding.EncodeToString(md[:]))
		if o.sha256 != "" {
			h.Set("Opc-Content-Sha256", o.sha256)
		}
	}
	if r.Method == http.MethodGet {
		w.Write(o.data)
	}
}

func (f *fakeObjectStorage) deleteObject(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("object")
	if _, ok := f.objects[name]; !ok {
		ociFail(w, http.StatusNotFound, "ObjectNotFound", "no object "+name)
		return
	}
	delete(f.objects, name)
	w.WriteHeader(http.StatusNoContent)
}

// renameObject moves an object to another name, replacing what is there,
// only if the source's ETag is still the one given.
func (f *fakeObjectStorage) renameObject(w http.ResponseWriter, r *http.Request) {
	var in struct {
		SourceName        string `json:"sourceName"`
		NewName           string `json:"newName"`
		SrcObjIfMatchETag string `json:"srcObjIfMatchETag"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.SourceName == "" || in.NewName == "" {
		ociFail(w, http.StatusBadRequest, "InvalidParameter", fmt.Sprintf("sourceName and newName are required (%v)", err))
		return
	}
	o, ok := f.objects[in.SourceName]
	switch {
	case !ok:
		ociFail(w, http.StatusNotFound, "ObjectNotFound", "no object "+in.SourceName)
	case in.SrcObjIfMatchETag != "" && in.SrcObjIfMatchETag != o.etag:
		ociFail(w, http.StatusPreconditionFailed, "IfMatchFailed", "the source's ETag is "+o.etag)
	default:
		delete(f.objects, in.SourceName)
		f.objects[in.NewName] = o
	}
}

// listObjects pages by name with start and nextStartWith, and sends only
// the fields asked for, as OCI does.
func (f *fakeObjectStorage) listObjects(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	fields := strings.Split(q.Get("fields"), ",")
	var names []string
	for name := range f.objects {
		if strings.HasPrefix(name, q.Get("prefix")) && name >= q.Get("start") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	out := map[string]any{}
	if len(names) > f.pageSize {
		out["nextStartWith"] = names[f.pageSize]
		names = names[:f.pageSize]
	}
	objects := []map[string]any{}
	for _, name := range names {
		o := map[string]any{"name": name}
		if slices.Contains(fields, "size") {
			o["size"] = len(f.objects[name].data)
		}
		if slices.Contains(fields, "timeModified") {
			o["timeModified"] = f.objects[name].modified.Format(time.RFC3339Nano)
		}
		objects = append(objects, o)
	}
	out["objects"] = objects
	ociJSON(w, out)
}

// --- multipart uploads

func (f *fakeObjectStorage) createUpload(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Object string `json:"object"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Object == "" {
		ociFail(w, http.StatusBadRequest, "InvalidParameter", fmt.Sprintf("object name missing (%v)", err))
		return
	}
	f.seq++
	id := fmt.Sprintf("upload-%d", f.seq)
	f.uploads[id] = &fakeUpload{object: in.Object, parts: map[int]fakePart{}}
	ociJSON(w, map[string]any{"namespace": f.namespace, "bucket": f.bucket, "object": in.Object,
		"uploadId": id, "timeCreated": time.Now().UTC().Format(time.RFC3339Nano)})
}

// upload is the open upload a request names, of its object.
func (f *fakeObjectStorage) upload(w http.ResponseWriter, r *http.Request) (*fakeUpload, string, bool) {
	id := r.URL.Query().Get("uploadId")
	up, ok := f.uploads[id]
	if !ok || up.object != r.PathValue("object") {
		ociFail(w, http.StatusNotFound, "NoSuchUpload", fmt.Sprintf("no upload %q of %s", id, r.PathValue("object")))
		return nil, "", false
	}
	return up, id, true
}

func (f *fakeObjectStorage) uploadPart(w http.ResponseWriter, r *http.Request) {
	up, _, ok := f.upload(w, r)
	if !ok {
		return
	}
	num, err := strconv.Atoi(r.URL.Query().Get("uploadPartNum"))
	if err != nil || num < 1 || num > 10000 {
		ociFail(w, http.StatusBadRequest, "InvalidParameter", "uploadPartNum must be 1 to 10000")
		return
	}
	data, _, ok := f.checkedBody(w, r)
	if !ok {
		return
	}
	f.seq++
	p := fakePart{data: data, etag: fmt.Sprintf("part-etag-%d", f.seq)}
	up.parts[num] = p
	w.Header().Set("Etag", p.etag)
}

// commitUpload makes the object of the parts listed, which must be every
// part uploaded, in order, each with its ETag.
func (f *fakeObjectStorage) commitUpload(w http.ResponseWriter, r *http.Request) {
	up, id, ok := f.upload(w, r)
	if !ok {
		return
	}
	var in struct {
		PartsToCommit []struct {
			PartNum int    `json:"partNum"`
			Etag    string `json:"etag"`
		} `json:"partsToCommit"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || len(in.PartsToCommit) == 0 {
		ociFail(w, http.StatusBadRequest, "InvalidParameter", fmt.Sprintf("no parts to commit (%v)", err))
		return
	}
	if len(in.PartsToCommit) != len(up.parts) {
		ociFail(w, http.StatusBadRequest, "InvalidParameter", fmt.Sprintf("%d parts listed, %d uploaded", len(in.PartsToCommit), len(up.parts)))
		return
	}
	var data []byte
	for i, p := range in.PartsToCommit {
		got, ok := up.parts[p.PartNum]
		if !ok || got.etag != p.Etag || i > 0 && p.PartNum <= in.PartsToCommit[i-1].PartNum {
			ociFail(w, http.StatusBadRequest, "InvalidParameter", fmt.Sprintf("part %d (etag %q): not uploaded, another etag, or out of order", p.PartNum, p.Etag))
			return
		}
		data = append(data, got.data...)
	}
	delete(f.uploads, id)
	f.seq++
	o := &fakeObject{data: data, etag: fmt.Sprintf("etag-%d", f.seq), multipart: true, modified: time.Now().UTC().Truncate(time.Second)}
	f.objects[up.object] = o
	w.Header().Set("Etag", o.etag)
	w.Header().Set("Last-Modified", o.modified.Format(http.TimeFormat))
}

func (f *fakeObjectStorage) abortUpload(w http.ResponseWriter, r *http.Request) {
	if _, id, ok := f.upload(w, r); ok {
		delete(f.uploads, id)
		w.WriteHeader(http.StatusNoContent)
	}
}

// --- pre-authenticated requests

func (f *fakeObjectStorage) createPAR(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name        string    `json:"name"`
		AccessType  string    `json:"accessType"`
		TimeExpires time.Time `json:"timeExpires"`
		ObjectName  string    `json:"objectName"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		ociFail(w, http.StatusBadRequest, "InvalidParameter", err.Error())
		return
	}
	switch {
	case in.Name == "":
		ociFail(w, http.StatusBadRequest, "InvalidParameter", "name is required")
	case in.AccessType != "ObjectRead" && in.AccessType != "ObjectWrite" && in.AccessType != "ObjectReadWrite":
		ociFail(w, http.StatusBadRequest, "InvalidParameter", "accessType "+in.AccessType+": this fake knows object PARs only")
	case in.ObjectName == "":
		ociFail(w, http.StatusBadRequest, "InvalidParameter", "an object PAR needs objectName")
	case !in.TimeExpires.After(time.Now().Add(f.skew)):
		ociFail(w, http.StatusBadRequest, "InvalidParameter", "timeExpires must be in the future")
	default:
		f.seq++
		p := &fakePAR{id: fmt.Sprintf("par+%03d", f.seq), name: in.Name, token: fmt.Sprintf("token-%d-%d", f.seq, time.Now().UnixNano()),
			object: in.ObjectName, access: in.AccessType, created: time.Now().Add(f.skew), expires: in.TimeExpires}
		f.pars[p.id] = p
		uri := (&url.URL{Path: "/p/" + p.token + "/n/" + f.namespace + "/b/" + f.bucket + "/o/" + p.object}).EscapedPath()
		out := f.wirePAR(p)
		out["accessUri"] = uri
		ociJSON(w, out)
	}
}

func (f *fakeObjectStorage) wirePAR(p *fakePAR) map[string]any {
	return map[string]any{"id": p.id, "name": p.name, "accessType": p.access, "objectName": p.object,
		"timeCreated": p.created.UTC().Format(time.RFC3339Nano), "timeExpires": p.expires.UTC().Format(time.RFC3339Nano)}
}

// listPARs pages by id with page and opc-next-page.
func (f *fakeObjectStorage) listPARs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var ids []string
	for id, p := range f.pars {
		if strings.HasPrefix(p.object, q.Get("objectNamePrefix")) && id >= q.Get("page") {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if len(ids) > f.pageSize {
		w.Header().Set("Opc-Next-Page", ids[f.pageSize])
		ids = ids[:f.pageSize]
	}
	out := []map[string]any{}
	for _, id := range ids {
		out = append(out, f.wirePAR(f.pars[id]))
	}
	ociJSON(w, out)
}

func (f *fakeObjectStorage) deletePAR(w http.ResponseWriter, r *http.Request) {
	if _, ok := f.pars[r.PathValue("id")]; !ok {
		ociFail(w, http.StatusNotFound, "NotAuthorizedOrNotFound", "no PAR "+r.PathValue("id"))
		return
	}
	delete(f.pars, r.PathValue("id"))
	w.WriteHeader(http.StatusNoContent)
}

// usePAR serves a PAR's URL: only its object, only the methods of its
// access type, only until it expires (by the fake's clock).
func (f *fakeObjectStorage) usePAR(w http.ResponseWriter, r *http.Request) {
	var p *fakePAR
	for _, q := range f.pars {
		if q.token == r.PathValue("token") {
			p = q
		}
	}
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	allowed := p != nil && (read && p.access != "ObjectWrite" || r.Method == http.MethodPut && p.access != "ObjectRead")
	if !allowed || p.object != r.PathValue("object") || !time.Now().Add(f.skew).Before(p.expires) {
		ociFail(w, http.StatusNotFound, "NotAuthorizedOrNotFound", "no such PAR, or not for this")
		return
	}
	if read {
		f.read(w, r, p.object)
		return
	}
	f.store(w, r, p.object)
}

// --- for the tests

// count tells how many requests let in matched METHOD and a path part.
func (f *fakeObjectStorage) count(method, part string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if strings.HasPrefix(c, method+" ") && strings.Contains(c, part) {
			n++
		}
	}
	return n
}

func (f *fakeObjectStorage) set(fn func(f *fakeObjectStorage)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func ociJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func ociFail(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"code": code, "message": message})
}
