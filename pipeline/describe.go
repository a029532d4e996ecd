package pipeline

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Graph returns a fresh scheduling state for the plan.
func (p *Plan) Graph() *Graph { return NewGraph(p.Jobs) }

// Describe renders the plan for `monkeyci verify`: one line per job, in
// dependency layers, with its image, resources and what it waits for.
func (p *Plan) Describe() string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, layer := range p.Graph().Layers() {
		for _, id := range layer {
			j, _ := p.Job(id)
			cpus := "cpus"
			if j.CPUs == 1 {
				cpus = "cpu"
			}
			resources := fmt.Sprintf("%g %s, %s", j.CPUs, cpus, formatMemory(j.Memory))
			if j.Pids > 0 {
				resources += fmt.Sprintf(", %d pids", j.Pids)
			}
			if j.Arch != "" {
				resources += ", " + j.Arch
			}
			image := j.Image
			if j.Service() {
				image += " (service on " + JoinPorts(j.Expose) + ")"
			}
			cells := []string{j.ID, image, resources}
			after := ""
			if len(j.Dependencies) > 0 {
				after = "after: " + strings.Join(j.Dependencies, ", ")
			}
			when := ""
			if j.When != nil {
				when = "when: " + j.When.String()
			}
			if after != "" || when != "" || j.Blocked {
				cells = append(cells, after)
			}
			if when != "" {
				cells = append(cells, when)
			}
			if j.Blocked {
				cells = append(cells, "(blocked)")
			}
			line := strings.Join(cells, "\t")
			fmt.Fprintln(w, line)
		}
	}
	w.Flush()
	return b.String()
}

// JoinPorts writes ports as "5432, 8080".
func JoinPorts(ports []int) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ", ")
}
