#!/usr/bin/env python3
"""Prints size figures of the Swift sources: file sizes (median, p90, max), functions
longer than 80 lines, and the share of declarations with a doc comment.

    Scripts/code-metrics.py [--list] [DIR ...]     (default: Sources)

Functions are found by their braces, after stripping strings and comments, so the
figures are close but not a compiler's. LocalInference's kernels are counted apart
(issue 11 exempts them).
"""
import os
import re
import statistics
import sys

DECL = re.compile(r'^\s*(?:@\w+(?:\([^)]*\))?\s+)*(?:(?:public|private|fileprivate|internal|package|open|static|final|override|mutating|nonisolated|convenience|required|dynamic|lazy|weak|unowned|indirect)\s+)*'
                  r'(func|init|deinit|subscript|var|let|struct|class|enum|protocol|actor|extension|typealias|case)\b')
FUNC = re.compile(r'^\s*(?:@\w+(?:\([^)]*\))?\s+)*(?:(?:public|private|fileprivate|internal|package|open|static|final|override|mutating|nonisolated|convenience|required)\s+)*(func\s+[^\s(<]+|init\??|deinit|subscript)')


def strip(line, state):
    """Removes string literals and comments from a line (multi-line strings tracked in state)."""
    out = []
    i = 0
    while i < len(line):
        if state['multi']:
            end = line.find('"""', i)
            if end < 0:
                return ''.join(out)
            state['multi'] = False
            i = end + 3
            continue
        if line.startswith('"""', i):
            state['multi'] = True
            i += 3
            continue
        c = line[i]
        if c == '"':
            j = i + 1
            while j < len(line) and line[j] != '"':
                j += 2 if line[j] == '\\' else 1
            i = j + 1
            out.append('""')
            continue
        if line.startswith('//', i):
            break
        out.append(c)
        i += 1
    return ''.join(out)


def analyse(path):
    with open(path, encoding='utf-8') as f:
        lines = f.read().split('\n')
    state = {'multi': False}
    functions = []
    stack = []  # (start line, depth at start, name)
    depth = 0
    decls = documented = 0
    previous_doc = False
    for number, raw in enumerate(lines, 1):
        stripped = raw.strip()
        in_string = state['multi']
        code = strip(raw, state)
        if not in_string:
            m = DECL.match(raw)
            if m and m.group(1) not in ('var', 'let', 'case') or (m and m.group(1) in ('var', 'let') and re.match(r'^\s*(public|open)\b', raw)):
                decls += 1
                documented += previous_doc
            fm = FUNC.match(code)
            if fm and '{' in code:
                stack.append((number, depth, fm.group(1)))
        if stripped.startswith('///'):
            previous_doc = True
        elif stripped.startswith('@') or stripped == '':
            pass
        else:
            previous_doc = False
        for c in code:
            if c == '{':
                depth += 1
            elif c == '}':
                depth -= 1
                while stack and depth <= stack[-1][1]:
                    start, _, name = stack.pop()
                    functions.append((path, start, number - start + 1, name))
    return len(lines) - (1 if lines and lines[-1] == '' else 0), functions, decls, documented


def main():
    args = [a for a in sys.argv[1:] if not a.startswith('--')]
    listing = '--list' in sys.argv
    roots = args or ['Sources']
    sizes, long_functions, kernel_long = [], [], []
    decls = documented = 0
    for root in roots:
        for directory, _, files in os.walk(root):
            for name in files:
                if not name.endswith('.swift'):
                    continue
                path = os.path.join(directory, name)
                size, functions, d, doc = analyse(path)
                sizes.append((size, path))
                decls += d
                documented += doc
                for f in functions:
                    if f[2] > 80:
                        (kernel_long if 'LocalInference' in path else long_functions).append(f)
    counts = sorted(s for s, _ in sizes)
    p90 = counts[min(len(counts) - 1, int(round(0.9 * (len(counts) - 1))))]
    print(f'files: {len(counts)}, lines: {sum(counts)}')
    print(f'file size: median {statistics.median(counts):.0f}, p90 {p90}, max {counts[-1]} ({max(sizes)[1]})')
    print(f'functions over 80 lines: {len(long_functions)} (plus {len(kernel_long)} in LocalInference)')
    print(f'declarations with a doc comment: {documented}/{decls} ({100 * documented / max(decls, 1):.0f}%)')
    if listing:
        for path, start, length, name in sorted(long_functions, key=lambda f: -f[2]):
            print(f'  {length:4} lines  {path}:{start}  {name}')
        for size, path in sorted(sizes, reverse=True)[:15]:
            print(f'  {size:5} {path}')


if __name__ == '__main__':
    main()
