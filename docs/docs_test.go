// Package docs holds the repository's documentation. Its tests keep the
// pages linked: a moved section or a renamed heading breaks a link silently
// on GitHub, so every relative link, and every #anchor into a page, is
// checked against the files and headings that exist.
package docs

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// repoRoot is the repository, seen from this package's directory.
const repoRoot = ".."

// unitFile is the systemd unit whose Documentation= must point into the docs.
const unitFile = "deploy/systemd/eventhost.service"

// repoURL is how Documentation= and other absolute links name this
// repository's files: repoURL + "blob/<branch>/<path>#<anchor>".
const repoURL = "https://github.com/eventhost/eventhost/"

var (
	// inlineLink matches [text](target) and ![alt](target); the target ends
	// at the first space (a title may follow) or closing parenthesis.
	inlineLink = regexp.MustCompile(`!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	codeSpan   = regexp.MustCompile("`[^`]*`")
	heading    = regexp.MustCompile(`^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$`)
)

// link is one relative link found in a markdown file.
type link struct {
	file   string // the markdown file, relative to the repository
	line   int
	target string // as written
}

// markdownFiles returns the repository's markdown files, relative to root,
// skipping hidden directories (.git, .ci caches).
func markdownFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".md") {
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return files
}

// scanMarkdown returns the links of a markdown text and the anchors of its
// headings, ignoring both inside fenced code blocks and code spans, and the
// line of a code fence that is never closed (0 when all are): such a fence
// hides every heading and link after it.
func scanMarkdown(name, text string) (links []link, anchors map[string]bool, unclosed int) {
	anchors = map[string]bool{}
	seen := map[string]int{}
	fence, fenceLine := "", 0
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimLeft(line, " ")
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence, fenceLine = trimmed[:3], n
			continue
		}
		if m := heading.FindStringSubmatch(line); m != nil {
			slug := Slug(m[2])
			// GitHub numbers repeated headings: x, x-1, x-2, …
			if k := seen[slug]; k > 0 {
				seen[slug]++
				slug = fmt.Sprintf("%s-%d", slug, k)
			} else {
				seen[slug] = 1
			}
			anchors[slug] = true
		}
		for _, m := range inlineLink.FindAllStringSubmatch(codeSpan.ReplaceAllString(line, ""), -1) {
			links = append(links, link{file: name, line: n, target: m[1]})
		}
	}
	if fence != "" {
		unclosed = fenceLine
	}
	return links, anchors, unclosed
}

// Slug is the anchor GitHub gives a heading: its text without markdown
// (code marks, link targets), lowercased, every character but letters,
// digits, spaces, '-' and '_' dropped, and each space turned into '-'.
func Slug(text string) string {
	text = inlineLink.ReplaceAllStringFunc(text, func(s string) string {
		return s[strings.Index(s, "[")+1 : strings.Index(s, "]")]
	})
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// checker resolves links against the files under root, reading each
// markdown target's headings once.
type checker struct {
	root    string
	anchors map[string]map[string]bool // repository-relative path → heading anchors
}

// check returns what is wrong with target, a link written in the markdown
// file from (relative to root), or "" when it points at an existing file and,
// with a #anchor, an existing heading of it.
func (c *checker) check(from, target string) string {
	if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
		return ""
	}
	path, anchor, _ := strings.Cut(target, "#")
	rel := from
	if path != "" {
		if strings.HasPrefix(path, "/") {
			return "absolute path: GitHub resolves it against the site, not the repository"
		}
		rel = filepath.Join(filepath.Dir(from), filepath.FromSlash(path))
		if rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return "points outside the repository"
		}
	}
	info, err := os.Stat(filepath.Join(c.root, rel))
	if err != nil {
		return fmt.Sprintf("no file %s", rel)
	}
	if anchor == "" {
		return ""
	}
	if info.IsDir() || !strings.HasSuffix(rel, ".md") {
		return fmt.Sprintf("#%s into %s, which is not a markdown file", anchor, rel)
	}
	anchors, ok := c.anchors[rel]
	if !ok {
		b, err := os.ReadFile(filepath.Join(c.root, rel))
		if err != nil {
			return fmt.Sprintf("read %s: %v", rel, err)
		}
		_, anchors, _ = scanMarkdown(rel, string(b))
		c.anchors[rel] = anchors
	}
	if !anchors[anchor] {
		return fmt.Sprintf("%s has no heading #%s", rel, anchor)
	}
	return ""
}

// TestMarkdownLinks checks every relative link of every markdown file in the
// repository (README.md, docs/*.md, examples' READMEs).
func TestMarkdownLinks(t *testing.T) {
	c := &checker{root: repoRoot, anchors: map[string]map[string]bool{}}
	files := markdownFiles(t, repoRoot)
	for _, want := range []string{"README.md", filepath.Join("docs", "design.md")} {
		if !contains(files, want) {
			t.Fatalf("markdown files %v: %s is missing", files, want)
		}
	}
	total := 0
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		links, _, unclosed := scanMarkdown(f, string(b))
		if unclosed != 0 {
			t.Errorf("%s:%d: code fence never closed", f, unclosed)
		}
		total += len(links)
		for _, l := range links {
			if msg := c.check(l.file, l.target); msg != "" {
				t.Errorf("%s:%d: link %s: %s", l.file, l.line, l.target, msg)
			}
		}
	}
	t.Logf("%d links in %d markdown files", total, len(files))
}

// TestUnitDocumentation checks that the systemd unit's Documentation= names a
// page and heading of this repository that exist.
func TestUnitDocumentation(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, unitFile))
	if err != nil {
		t.Fatal(err)
	}
	var urls []string
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Documentation="); ok {
			urls = append(urls, strings.Fields(v)...)
		}
	}
	if len(urls) == 0 {
		t.Fatalf("%s: no Documentation=", unitFile)
	}
	c := &checker{root: repoRoot, anchors: map[string]map[string]bool{}}
	for _, u := range urls {
		rest, ok := strings.CutPrefix(u, repoURL+"blob/main/")
		if !ok {
			t.Errorf("%s: Documentation=%s: want a page of this repository, %sblob/main/PATH", unitFile, u, repoURL)
			continue
		}
		if msg := c.check("README.md", rest); msg != "" {
			t.Errorf("%s: Documentation=%s: %s", unitFile, u, msg)
		}
	}
}

// TestReadmePluginCompiles builds the plugin that README.md shows, and checks
// that docs/writing-plugins.md shows the same one.
func TestReadmePluginCompiles(t *testing.T) {
	readme := goBlock(t, "README.md")
	if guide := goBlock(t, filepath.Join("docs", "writing-plugins.md")); guide != readme {
		t.Errorf("the Go plugin in docs/writing-plugins.md differs from README.md's:\n%s\nREADME.md:\n%s", guide, readme)
	}
	if testing.Short() {
		t.Skip("-short: the README's plugin is not built")
	}
	// Inside the module, so that the sdk import resolves; a dot directory,
	// so that ./... never sees it.
	dir, err := os.MkdirTemp(repoRoot, ".docs-plugin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(readme), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(t.TempDir(), "eventhost-plugin-unique-buyers"), ".")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("README.md's plugin does not build: %v\n%s", err, out)
	}
}

// goBlock returns the first ```go block of a markdown file.
func goBlock(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, file))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "\n```go\n")
	if !ok {
		t.Fatalf("%s: no ```go block", file)
	}
	block, _, ok := strings.Cut(rest, "\n```\n")
	if !ok {
		t.Fatalf("%s: the ```go block does not end", file)
	}
	return block + "\n"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestSlug(t *testing.T) {
	tests := []struct{ heading, want string }{
		{"Delivery, honestly stated", "delivery-honestly-stated"},
		{"Security: least privilege", "security-least-privilege"},
		{"What is rejected, and what needs a restart", "what-is-rejected-and-what-needs-a-restart"},
		{"5. What the sandbox allows", "5-what-the-sandbox-allows"},
		{"2. The service: `sdk/proto/pluginv1/plugin.proto`", "2-the-service-sdkprotopluginv1pluginproto"},
		{"Start, stop, restart", "start-stop-restart"},
		{"go-plugin's own services", "go-plugins-own-services"},
		{"snake_case and [a link](x.md)", "snake_case-and-a-link"},
	}
	for _, tt := range tests {
		if got := Slug(tt.heading); got != tt.want {
			t.Errorf("Slug(%q) = %q, want %q", tt.heading, got, tt.want)
		}
	}
}

// TestCheckerCatches runs the checker on a small tree, so that a clean run
// over the repository means something.
func TestCheckerCatches(t *testing.T) {
	root := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("README.md", "# Top\n\n## Same\n\n## Same\n\n```\n## Not a heading\n```\n")
	write("docs/page.md", "# Page\n\n## Exit codes, again\n")
	write("src/x.go", "package x\n")
	tests := []struct {
		from, target string
		wantErr      string // a part of the message; "" for none
	}{
		{"README.md", "docs/page.md", ""},
		{"README.md", "docs/page.md#exit-codes-again", ""},
		{"README.md", "#same", ""},
		{"README.md", "#same-1", ""},
		{"README.md", "#top", ""},
		{"README.md", "src", ""},
		{"docs/page.md", "../README.md#same", ""},
		{"docs/page.md", "../src/x.go", ""},
		{"docs/page.md", "#page", ""},
		{"README.md", "https://example.com/nowhere#x", ""},
		{"README.md", "docs/missing.md", "no file"},
		{"README.md", "docs/page.md#exit-codes", "no heading #exit-codes"},
		{"README.md", "#same-2", "no heading #same-2"},
		{"README.md", "#not-a-heading", "no heading"},
		{"docs/page.md", "page.md#nope", "no heading #nope"},
		{"docs/page.md", "README.md", "no file"},
		{"docs/page.md", "../../outside.md", "outside the repository"},
		{"README.md", "/docs/page.md", "absolute path"},
		{"README.md", "src/x.go#L1", "not a markdown file"},
	}
	c := &checker{root: root, anchors: map[string]map[string]bool{}}
	for _, tt := range tests {
		got := c.check(tt.from, tt.target)
		if (tt.wantErr == "") != (got == "") || !strings.Contains(got, tt.wantErr) {
			t.Errorf("check(%s, %s) = %q, want %q", tt.from, tt.target, got, tt.wantErr)
		}
	}
	links, _, unclosed := scanMarkdown("x.md", "[a](b.md) `[c](d.md)` ![e](f.png \"title\")\n```\n[g](h.md)\n```\n")
	var targets []string
	for _, l := range links {
		targets = append(targets, l.target)
	}
	if strings.Join(targets, ",") != "b.md,f.png" {
		t.Errorf("links = %v, want [b.md f.png] (none from code)", targets)
	}
	if unclosed != 0 {
		t.Errorf("unclosed fence reported at line %d of a closed one", unclosed)
	}
	if _, _, unclosed := scanMarkdown("x.md", "# A\n```\ncode\n\n## B\n"); unclosed != 2 {
		t.Errorf("unclosed fence at line %d, want 2", unclosed)
	}
}
