package orders

// span is where one string of a batch's replies is in the batch's text.
type span struct{ off, n int }

// hashReply reads one raw HGETALL reply as Redis sent it: a RESP2 array of
// names and values in turn, or a RESP3 map, of bulk strings. It appends each
// name and value to text without the framing, and their spans to spans,
// name then value. ok is false, and nothing is appended, for any other
// reply: an error (WRONGTYPE, or one about the round trip) or a type
// HGETALL does not send. The loader then reads that key again the usual
// way, which reports it as it always did.
func hashReply(raw, text []byte, spans []span) (_ []byte, _ []span, ok bool) {
	kind, n, i, ok := header(raw, 0)
	switch {
	case !ok:
		return text, spans, false
	case kind == '*' && n%2 == 0:
		n /= 2
	case kind == '%':
	default:
		return text, spans, false
	}
	text0, spans0 := len(text), len(spans)
	for range 2 * n {
		kind, m, j, ok := header(raw, i)
		if !ok || kind != '$' || m > len(raw)-j-2 || raw[j+m] != '\r' || raw[j+m+1] != '\n' {
			return text[:text0], spans[:spans0], false
		}
		spans = append(spans, span{off: len(text), n: m})
		text = append(text, raw[j:j+m]...)
		i = j + m + 2
	}
	if i != len(raw) {
		return text[:text0], spans[:spans0], false
	}
	return text, spans, true
}

// header reads the RESP header line at raw[i:]: its type byte and its
// non-negative length, and where the next line starts. ok is false for
// anything else (a negative length, a null, an error line).
func header(raw []byte, i int) (kind byte, n, next int, ok bool) {
	if i+3 >= len(raw) { // a type byte, a digit and CRLF at least
		return 0, 0, 0, false
	}
	kind = raw[i]
	j := i + 1
	for ; j < len(raw) && raw[j] != '\r'; j++ {
		c := raw[j]
		if c < '0' || c > '9' || n > len(raw) { // no length can exceed the reply
			return 0, 0, 0, false
		}
		n = n*10 + int(c-'0')
	}
	if j == i+1 || j+1 >= len(raw) || raw[j+1] != '\n' {
		return 0, 0, 0, false
	}
	return kind, n, j + 2, true
}
