package dockertest_test

import (
	"context"
	"testing"

	"github.com/monkeyci/monkeyci/agent/engine"
	"github.com/monkeyci/monkeyci/internal/dockertest"
)

// What a test leaves behind under its labels is gone once it ends.
func TestLabelsCleanUp(t *testing.T) {
	e := dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	ctx := context.Background()
	var labels map[string]string
	t.Run("leaves things behind", func(t *testing.T) {
		labels = dockertest.Labels(t)
		if other := dockertest.Labels(t); other[dockertest.BuildLabel] == labels[dockertest.BuildLabel] {
			t.Fatal("labels are not unique")
		}
		if err := e.CreateVolume(ctx, labels[dockertest.BuildLabel], labels); err != nil {
			t.Fatal(err)
		}
		id, err := e.Create(ctx, engine.ContainerSpec{
			Image: dockertest.Busybox, Cmd: []string{"sleep", "60"}, Labels: labels, Network: "none",
			Mounts: []engine.Mount{{Volume: labels[dockertest.BuildLabel], Target: "/v"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
	})
	if ids, err := e.ListContainers(ctx, labels); err != nil || len(ids) != 0 {
		t.Errorf("containers left: %v %v", ids, err)
	}
	if names, err := e.ListVolumes(ctx, labels); err != nil || len(names) != 0 {
		t.Errorf("volumes left: %v %v", names, err)
	}
}
