package web

import (
	"archive/tar"
	"bytes"
	"context"
	"html"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// anArchive is a tar archive of a few files, as an agent saves one.
func anArchive(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i, body := range []string{"first\n", strings.Repeat("second ", 1000)} {
		if err := tw.WriteHeader(&tar.Header{Name: "file" + strconv.Itoa(i), Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// putArtifact stores an artifact of build, as an agent's upload does.
func (f *fixture) putArtifact(t *testing.T, build, id string, archive []byte) {
	t.Helper()
	if _, err := f.blobs.Put(context.Background(), coordinator.ArtifactKey(build, id), bytes.NewReader(archive)); err != nil {
		t.Fatal(err)
	}
}

var artifactLink = regexp.MustCompile(`<a href="(/builds/[^"]+/artifacts/[^"]+)" download="([^"]+)">([^<]+)</a>`)

func TestTheBuildPageLinksItsArtifactsAndTheLinksDownloadThem(t *testing.T) {
	f := newFixture(t)
	b := f.trigger(t, "alpha")
	archive := anArchive(t)
	f.putArtifact(t, b.ID, "dist", archive)
	viewer := f.client(t, f.viewer)

	resp, body := viewer.get(t, "/builds/"+b.ID)
	m := artifactLink.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil || m[2] != "dist.tar" || m[3] != "dist" || !strings.Contains(body, "<td>"+byteSize(int64(len(archive)))+"</td>") {
		t.Fatalf("the build page: %s; no link to dist with its size (%d bytes):\n%s", resp.Status, len(archive), body)
	}
	link := html.UnescapeString(m[1])
	if link != "/builds/"+b.ID+"/artifacts/dist" {
		t.Errorf("the link is %s", link)
	}
	resp, got := viewer.get(t, link)
	if resp.StatusCode != http.StatusOK || got != string(archive) {
		t.Fatalf("GET %s: %s, %d bytes; want the stored %d", link, resp.Status, len(got), len(archive))
	}
	for h, want := range map[string]string{
		"Content-Type": "application/x-tar", "Content-Disposition": "attachment; filename=dist.tar",
		"Content-Length": strconv.Itoa(len(archive)),
	} {
		if v := resp.Header.Get(h); v != want {
			t.Errorf("%s: %q, want %q", h, v, want)
		}
	}

	// The live view's sections carry the list too.
	s := viewer.stream(t, "/builds/"+b.ID+"/events")
	if live := sections(t, s.until(t, "build-artifacts")); !artifactLink.MatchString(live["build-artifacts"]) {
		t.Errorf("the live artifacts section has no link:\n%s", live["build-artifacts"])
	}

	for path, want := range map[string]string{
		"/builds/" + b.ID + "/artifacts/nope":      "Build " + b.ID + " saved no artifact &#34;nope&#34;.",
		"/builds/" + b.ID + "/artifacts/..%2Fdist": "saved no artifact",
		"/builds/nosuch/artifacts/dist":            "There is no build nosuch.",
	} {
		if resp, body := viewer.get(t, path); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, want) {
			t.Errorf("GET %s: %s, want 404 saying %q:\n%s", path, resp.Status, want, body)
		}
	}

	// A build that saved nothing shows no artifacts panel.
	other := f.trigger(t, "beta")
	if _, body := viewer.get(t, "/builds/"+other.ID); strings.Contains(body, "Artifacts") || artifactLink.MatchString(body) {
		t.Errorf("a build without artifacts lists some:\n%s", body)
	}
}

// Without a session the download is refused: the browser is sent to sign
// in, and back; a session whose token is revoked is nobody's.
func TestAnArtifactIsOnlyForTheSignedIn(t *testing.T) {
	f := newFixture(t)
	b := f.trigger(t, "alpha")
	archive := anArchive(t)
	f.putArtifact(t, b.ID, "dist", archive)
	path := "/builds/" + b.ID + "/artifacts/dist"

	resp, body := f.client(t, "").get(t, path)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next="+strings.ReplaceAll(path, "/", "%2F") || strings.Contains(body, "second") {
		t.Errorf("without a session: %s to %q, want 303 to the login page and no bytes", resp.Status, resp.Header.Get("Location"))
	}
	viewer := f.client(t, f.viewer)
	if resp, _ := viewer.get(t, path); resp.StatusCode != http.StatusOK {
		t.Fatalf("a viewer's session: %s", resp.Status)
	}
	tokens, err := f.c.AdminServer().ListTokens(context.Background(), &fleet.ListTokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range tokens.GetTokens() {
		if tok.GetKind() == "viewer" {
			if _, err := f.c.AdminServer().RevokeToken(context.Background(), &fleet.TokenRef{Id: tok.GetId()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if resp, body := viewer.get(t, path); resp.StatusCode != http.StatusSeeOther || strings.Contains(body, "second") {
		t.Errorf("after the viewer token was revoked: %s, want 303 to sign in and no bytes", resp.Status)
	}
}
