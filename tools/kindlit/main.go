// Command kindlit type-checks every package of the module in the current
// directory (tests included) and prints each string literal whose type, in
// context, is ha.Kind outside the two files that define the kinds: history
// event names and plan steps are written as constants, never as text. It
// exits 1 when it finds one (make lint runs it).
package main

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

type pkg struct {
	ImportPath, Dir, Export, Module_             string
	GoFiles, CgoFiles, TestGoFiles, XTestGoFiles []string
	ImportMap                                    map[string]string
	Standard                                     bool
	ForTest                                      string
	Module                                       *struct{ Path string }
}

const kind = "github.com/pgguard/pgguard/internal/ha.Kind"

func main() {
	cmd := exec.Command("go", "list", "-e", "-export", "-deps", "-test", "-json", "./...")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		panic(err)
	}
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	dec := json.NewDecoder(out)
	var pkgs []pkg
	exports := map[string]string{}
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			panic(err)
		}
		exports[p.ImportPath] = p.Export
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		panic(err)
	}
	found := 0
	seen := map[string]bool{}
	for _, p := range pkgs {
		if p.Module == nil || p.Module.Path != "github.com/pgguard/pgguard" || strings.HasSuffix(p.ImportPath, ".test") {
			continue
		}
		// go list -test gives each package with tests a second variant
		// ("pkg [pkg.test]") whose GoFiles include the test files, and the
		// external test package ("pkg_test [pkg.test]"); every variant is
		// checked and positions are printed once.
		files := p.GoFiles
		fset := token.NewFileSet()
		var asts []*ast.File
		for _, f := range files {
			af, err := parser.ParseFile(fset, filepath.Join(p.Dir, f), nil, 0)
			if err != nil {
				panic(err)
			}
			asts = append(asts, af)
		}
		imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
			if m, ok := p.ImportMap[path]; ok {
				path = m
			}
			return os.Open(exports[path])
		})
		info := &types.Info{Types: map[ast.Expr]types.TypeAndValue{}}
		conf := types.Config{Importer: imp, Error: func(err error) { fmt.Fprintln(os.Stderr, p.ImportPath, err) }}
		conf.Check(strings.Fields(p.ImportPath)[0], fset, asts, info)
		for e, tv := range info.Types {
			lit, ok := e.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING || lit.Value == `""` || tv.Type == nil || tv.Type.String() != kind {
				continue
			}
			pos := fset.Position(lit.Pos())
			if strings.HasSuffix(pos.Filename, "internal/ha/actions.go") || strings.HasSuffix(pos.Filename, "internal/ha/events.go") {
				continue
			}
			if at := fmt.Sprintf("%s: %s", pos, lit.Value); !seen[at] {
				seen[at] = true
				found++
				fmt.Println(at)
			}
		}
	}
	fmt.Printf("%d non-empty string literals of type ha.Kind outside internal/ha/actions.go and events.go\n", found)
	if found > 0 {
		os.Exit(1)
	}
}
