// Command wordcount is fray's demo: it starts a local cluster in this
// process (an embedded broker on file storage and two workers), puts a text
// corpus into the object store in chunks, runs a word-count task per chunk
// (each task receives its chunk by reference), waits for them with progress,
// reduces the counts and prints the most common words.
//
//	go run ./examples/wordcount [-corpus 'GLOB,GLOB'] [-top 15]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/frayhq/fray"
	"github.com/frayhq/fray/objects"
	"github.com/frayhq/fray/tasks"
)

// countWords is the task: it counts the words of one chunk of text.
func countWords(_ context.Context, text string) (map[string]int, error) {
	counts := map[string]int{}
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) }) {
		if len(w) > 3 { // skip the shortest words, which say little
			counts[w]++
		}
	}
	return counts, nil
}

func main() {
	corpus := flag.String("corpus", "*.md,*/*.go,*/*/*.go", "comma-separated file globs forming the corpus")
	chunk := flag.Int("chunk", 32<<10, "chunk size in bytes; one task per chunk")
	top := flag.Int("top", 15, "how many words to print")
	flag.Parse()
	if err := run(*corpus, *chunk, *top); err != nil {
		fmt.Fprintln(os.Stderr, "wordcount:", err)
		os.Exit(1)
	}
}

func run(corpus string, chunkSize, top int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	reg := tasks.NewRegistry()
	tasks.Register(reg, "wordcount", countWords)
	start := time.Now()
	c, err := fray.Connect(ctx, "local", fray.WithRegistry(reg), fray.WithLocalWorkers(2, 2))
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Printf("local cluster up at %s with %d workers (%s)\n", c.URL(), len(c.Workers()), time.Since(start).Round(time.Millisecond))

	chunks, files, err := readCorpus(corpus, chunkSize)
	if err != nil {
		return err
	}
	if len(chunks) == 0 {
		return fmt.Errorf("corpus %q matched no text", corpus)
	}
	refs := make([]objects.Ref, len(chunks))
	var total int64
	for i, ch := range chunks {
		if refs[i], err = c.Put(ctx, ch); err != nil {
			return err
		}
		total += int64(len(ch))
	}
	fmt.Printf("put %d files as %d chunks (%d KiB) into the object store\n", files, len(chunks), total>>10)

	futs := make([]tasks.TypedFuture[map[string]int], len(refs))
	for i, ref := range refs {
		futs[i] = fray.RunRef[map[string]int](ctx, c, "wordcount", ref)
	}
	// On a terminal the progress line rewrites itself; elsewhere (a log,
	// a pipe) each change is a line of its own.
	st, _ := os.Stdout.Stat()
	tty := st != nil && st.Mode()&os.ModeCharDevice != 0
	pending, shown := futs, -1
	for len(pending) > 0 {
		_, pending, err = fray.Wait(ctx, pending, len(pending), 200*time.Millisecond)
		if err != nil {
			return err
		}
		done := len(futs) - len(pending)
		switch {
		case tty:
			fmt.Printf("\rcounting: %d/%d chunks done", done, len(futs))
		case done != shown:
			fmt.Printf("counting: %d/%d chunks done\n", done, len(futs))
		}
		shown = done
	}
	if tty {
		fmt.Println()
	}

	totals := map[string]int{}
	byWorker := map[string]int{}
	for _, f := range futs {
		counts, err := f.Get(ctx)
		if err != nil {
			return err
		}
		for w, n := range counts {
			totals[w] += n
		}
		res, _ := f.Result(ctx)
		byWorker[res.Worker]++
	}
	words := make([]string, 0, len(totals))
	for w := range totals {
		words = append(words, w)
	}
	sort.Slice(words, func(i, j int) bool {
		if totals[words[i]] != totals[words[j]] {
			return totals[words[i]] > totals[words[j]]
		}
		return words[i] < words[j]
	})
	fmt.Printf("chunks per worker: %v\ntop %d of %d distinct words:\n", byWorker, min(top, len(words)), len(words))
	for i, w := range words[:min(top, len(words))] {
		fmt.Printf("%3d. %-20s %d\n", i+1, w, totals[w])
	}
	fmt.Printf("done in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// readCorpus splits the matching files into chunks of about size bytes,
// cut at line ends.
func readCorpus(globs string, size int) ([]string, int, error) {
	var chunks []string
	files := 0
	var cur strings.Builder
	for _, g := range strings.Split(globs, ",") {
		matches, err := filepath.Glob(strings.TrimSpace(g))
		if err != nil {
			return nil, 0, err
		}
		for _, m := range matches {
			b, err := os.ReadFile(m)
			if err != nil {
				return nil, 0, err
			}
			files++
			for _, line := range strings.SplitAfter(string(b), "\n") {
				cur.WriteString(line)
				if cur.Len() >= size {
					chunks = append(chunks, cur.String())
					cur.Reset()
				}
			}
		}
	}
	if cur.Len() > 0 {
		chunks = append(chunks, cur.String())
	}
	return chunks, files, nil
}
