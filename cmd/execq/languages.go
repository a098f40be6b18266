package main

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/execq/execq/worker"
)

// languagesFlag is --languages FILE, the catalogue that the worker
// resolves requests' languages with, and that execq languages lists.
type languagesFlag struct {
	path string
}

func (f *languagesFlag) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.path, "languages", "", `language catalogue, a JSON file {"languages": [{"name", "image", "file", "compile", "run", "env"}, …]} that replaces the built-in one (execq languages --json prints it)`)
}

// catalogue is the file's catalogue, or the built-in one.
func (f *languagesFlag) catalogue() (*worker.Catalogue, error) {
	if f.path == "" {
		return worker.DefaultCatalogue(), nil
	}
	return worker.LoadCatalogue(f.path)
}

func newLanguagesCommand() *cobra.Command {
	var (
		lf     languagesFlag
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "languages",
		Short: "List the languages of the catalogue: name, image, source file, steps",
		Long: `Lists the languages that execq run --lang and a request's "language" name:
the image each runs in, the file its code is written to under /workspace, its
compile step (if any) and its run step, and the environment it adds. The
catalogue is the built-in one, or the one of --languages FILE, which is what a
worker started with that file resolves languages with: the worker's
catalogue decides, not the client's. --json prints it in the file's format, a
start for a catalogue of one's own.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := lf.catalogue()
			if err != nil {
				return exitWith(exitExecqFailed, "%v", err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), c)
			}
			return printLanguages(cmd.OutOrStdout(), c)
		},
	}
	lf.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the catalogue as JSON, in the format --languages reads")
	return cmd
}

func printLanguages(w io.Writer, c *worker.Catalogue) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tIMAGE\tFILE\tCOMPILE\tRUN\tENV")
	for _, l := range c.Languages() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", l.Name, l.Image, l.File, argvText(l.Compile), argvText(l.Run), envText(l.Env))
	}
	return tw.Flush()
}

// argvText writes argv as a shell would read it; "-" for none.
func argvText(argv []string) string {
	if len(argv) == 0 {
		return "-"
	}
	words := make([]string, len(argv))
	for i, a := range argv {
		words[i] = a
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
			words[i] = strconv.Quote(a)
		}
	}
	return strings.Join(words, " ")
}

func envText(env map[string]string) string {
	if len(env) == 0 {
		return "-"
	}
	list := make([]string, 0, len(env))
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	sort.Strings(list)
	return strings.Join(list, " ")
}

// parseWarm reads --warm "python=4,node=1,default=2": a catalogue
// language's image, "default" for the worker's image, or an image
// reference, each with the number of its containers kept warm.
func parseWarm(s string, c *worker.Catalogue, defaultImage string, poolSize int) ([]worker.WarmImage, error) {
	var warm []worker.WarmImage
	names := map[string]bool{}
	index := map[string]int{}
	total := 0
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, count, ok := strings.Cut(part, "=")
		n, err := strconv.Atoi(count)
		if !ok || name == "" || err != nil || n < 0 {
			return nil, fmt.Errorf("--warm: %q: give NAME=COUNT, NAME a language, default or an image, COUNT 0 or more", part)
		}
		if names[name] {
			return nil, fmt.Errorf("--warm names %s twice", name)
		}
		names[name] = true
		image := name
		if l, ok := c.Lookup(name); ok {
			image = l.Image
		} else if name == "default" {
			image = defaultImage
		}
		// Two names of one image (default and sh) add up.
		if i, ok := index[image]; ok {
			warm[i].Count += n
		} else {
			index[image] = len(warm)
			warm = append(warm, worker.WarmImage{Image: image, Count: n})
		}
		total += n
	}
	if len(warm) == 0 {
		return nil, fmt.Errorf("--warm %q names no image", s)
	}
	if total > poolSize {
		return nil, fmt.Errorf("--warm asks for %d warm containers, above --pool-size %d: raise --pool-size or lower the counts", total, poolSize)
	}
	return warm, nil
}
