#!/usr/bin/env bash
# Refreshes the copy of MathJax in _vendor/mathjax/ from the npm package, keeping only
# the files the site loads: the tex-mml-chtml component, its web fonts and the TeX
# extensions that its autoload step may fetch. The copy is committed, so building the
# site needs neither npm nor the network; run this only to change MathJax's version.
set -euo pipefail
VERSION=3.2.2
cd "$(dirname "${BASH_SOURCE[0]}")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "mathjax@$VERSION" >/dev/null && tar xzf "mathjax-$VERSION.tgz")
src="$work/package"
dest=_vendor/mathjax
rm -rf "$dest"
mkdir -p "$dest/es5/output/chtml/fonts" "$dest/es5/input/tex"
cp "$src/LICENSE" "$dest/LICENSE"
cp "$src/es5/tex-mml-chtml.js" "$dest/es5/"
cp -r "$src/es5/output/chtml/fonts/woff-v2" "$dest/es5/output/chtml/fonts/"
cp -r "$src/es5/input/tex/extensions" "$dest/es5/input/tex/"
# all-packages.js serves the tex-full components, which the site does not use.
rm "$dest/es5/input/tex/extensions/all-packages.js"
echo "MathJax $VERSION (npm package mathjax, Apache License 2.0)" > "$dest/VERSION"
du -sh "$dest"
