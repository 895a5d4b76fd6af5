package demo

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSummary(t *testing.T) {
	tests := []struct {
		name  string
		write func(s Summary)
		want  string
	}{
		{
			name:  "heading only",
			write: func(Summary) {},
			want:  "\nfinished in 1.235s\n",
		},
		{
			name: "rows line up",
			write: func(s Summary) {
				s.Row("operations", "%d (%d committed, %d gave up)", 320, 319, 1)
				s.Row("restarts", "%d in place", 5)
				s.Row("", "(continued)")
			},
			want: "\nfinished in 1.235s\n" +
				"  operations  320 (319 committed, 1 gave up)\n" +
				"  restarts    5 in place\n" +
				"              (continued)\n",
		},
		{
			name: "causes sorted by name",
			write: func(s Summary) {
				s.Causes(map[string]int{"55P03 lock_not_available": 2, "40P01 deadlock_detected": 26, "40001 serialization_failure": 100000})
			},
			want: "\nfinished in 1.235s\n" +
				"    100000  40001 serialization_failure\n" +
				"       26  40P01 deadlock_detected\n" +
				"        2  55P03 lock_not_available\n",
		},
		{
			name:  "no causes",
			write: func(s Summary) { s.Causes(nil) },
			want:  "\nfinished in 1.235s\n",
		},
		{
			name:  "check passed",
			write: func(s Summary) { s.Check(true, "OK: all there", "sum %d, rows %d", 0, 42) },
			want:  "\nfinished in 1.235s\n  check       sum 0, rows 42: OK: all there\n",
		},
		{
			name:  "check failed",
			write: func(s Summary) { s.Check(false, "OK: all there", "sum %d, rows %d", 3, 41) },
			want:  "\nfinished in 1.235s\n  check       sum 3, rows 41: FAILED\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tt.write(Finished(&buf, 1234567*time.Microsecond))
			if diff := cmp.Diff(tt.want, buf.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}
