package agent

import "path/filepath"

// SocketOf is the job API socket of the build id running on r ("" when
// none runs), for tests that dial it from the host.
func SocketOf(r *Runner, id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.builds[id]; ok && b.apiDir != "" {
		return filepath.Join(b.apiDir, "job.sock")
	}
	return ""
}
