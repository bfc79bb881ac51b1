package redistest

import "testing"

func TestParseAnnotate(t *testing.T) {
	out := []byte(`--------------------------------------------------------------------------------
Ir                    file:function
--------------------------------------------------------------------------------
120,245,469 (100.0%)  PROGRAM TOTALS
 83,770,446 (69.67%)  ???:evalShaCommand [/usr/bin/redis-check-rdb]
 34,834,139 (28.97%)  ???:call'2 [/usr/bin/redis-check-rdb]
  2,659,198 ( 2.21%)  ./string/../memmove-vec-unaligned-erms.S:__memcpy_avx_unaligned_erms [/usr/lib/libc.so.6]
      1,000 ( 0.00%)  ???:evalShaCommand [/other]
`)
	p := parseAnnotate(out)
	want := Profile{"evalShaCommand": 83770446, "call'2": 34834139, "__memcpy_avx_unaligned_erms": 2659198}
	if len(p) != len(want) {
		t.Fatalf("got %v, want %v", p, want)
	}
	for fn, n := range want {
		if p[fn] != n {
			t.Errorf("%s: got %d, want %d", fn, p[fn], n)
		}
	}
}
