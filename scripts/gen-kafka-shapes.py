"""Writes broker/src/kafka/shapes_table.rs: the wire layout (field kinds by
version) of every request the Kafka listener serves, read off the
kafka-protocol crate's generated decoders, so the listener can check a
frame's array lengths against its size before the crate's decoder reserves
memory for them (kafka-protocol 0.18 passes a wire-given count straight to
Vec::with_capacity: 14 bytes could ask for 150 GB and abort the process).

  python3 scripts/gen-kafka-shapes.py ~/.cargo/registry/src/*/kafka-protocol-0.18.0/src/messages

Run it again when the kafka-protocol version changes; the unit tests in
broker/src/kafka/shapes.rs check the table against the crate's codecs.
"""
import re, sys, os
root = sys.argv[1]
apis = ['api_versions', 'metadata', 'produce', 'fetch', 'list_offsets', 'offset_commit',
        'offset_fetch', 'find_coordinator', 'join_group', 'heartbeat', 'leave_group',
        'sync_group', 'describe_groups', 'list_groups', 'create_topics', 'delete_topics',
        'init_producer_id', 'offset_for_leader_epoch', 'describe_configs',
        'create_partitions', 'delete_groups', 'incremental_alter_configs', 'describe_cluster',
        'elect_leaders']
MAXV = 32767
FIXED = {'Int8': 1, 'Int16': 2, 'Int32': 4, 'Int64': 8, 'Uuid': 16, 'Boolean': 1, 'Float64': 8, 'UInt16': 2, 'UInt32': 4}

def past_brace(text, i):
    """The index just past the `}` closing a `{` opened before `i`."""
    depth = 1
    while depth:
        depth += text[i] == '{'
        depth -= text[i] == '}'
        i += 1
    return i

def block(src, name):
    m = re.search(r'impl Decodable for %s \{' % name, src)
    return src[m.end():past_brace(src, m.end()) - 1]

def field_types(src, name):
    m = re.search(r'pub struct %s \{(.*?)\n\}' % name, src, re.S)
    return dict(re.findall(r'pub (\w+): ([^,\n]+),', m.group(1)))

def stmts(body):
    out = []
    for m in re.finditer(r'\n        let (mut )?(\w+)(: \w+)? = ', body):
        start = m.end(); depth = 0; j = start
        while True:
            c = body[j]
            if c in '{(': depth += 1
            elif c in '})': depth -= 1
            elif c == ';' and depth == 0: break
            j += 1
        out.append((m.group(2), ' '.join(body[start:j].split())))
    return out

def cond_range(cond):
    lo, hi = 0, MAXV
    for op, n in re.findall(r'version (>=|<=) (\d+)', cond):
        if op == '>=': lo = max(lo, int(n))
        else: hi = min(hi, int(n))
    return lo, hi

def split_if(e):
    # "if COND { A } else { B }" -> (COND, A, B); A/B balanced
    m = re.match(r'if (.*?) \{ ', e)
    if not m: return None
    i = past_brace(e, m.end())
    a = e[m.end():i - 2].strip()
    rest = e[i:].strip()
    assert rest.startswith('else {'), e
    b = rest[len('else {'):-1].strip()
    return m.group(1), a, b

def kinds(e, lo, hi, elem):
    """[(lo, hi, kind)] for expression e over versions lo..hi."""
    s = split_if(e)
    if s:
        cond, a, b = s
        clo, chi = cond_range(cond)
        out = []
        ilo, ihi = max(lo, clo), min(hi, chi)
        if ilo <= ihi:
            out += kinds(a, ilo, ihi, elem)
        # complement pieces
        if lo < clo: out += kinds(b, lo, min(hi, clo - 1), elem)
        if hi > chi: out += kinds(b, max(lo, chi + 1), hi, elem)
        return out
    if not e.startswith('types::'):
        return []  # a default value: nothing on the wire
    t = e[len('types::'):]
    t = re.sub(r'\.decode\(buf\)\?$', '', t)
    return [(lo, hi, kind(t, elem))]

def kind(t, elem):
    for name, n in FIXED.items():
        if t == name: return 'Fixed(%d)' % n
    simple = {'String': 'Str', 'CompactString': 'CStr', 'Bytes': 'Bytes', 'CompactBytes': 'CBytes',
              'UnsignedVarInt': 'UVarint', 'VarInt': 'Varint', 'VarLong': 'Varint'}
    if t in simple: return simple[t]
    m = re.match(r'(Compact)?Array\((.*)\)$', t)
    if m:
        inner = m.group(2)
        ctor = 'CArr' if m.group(1) else 'Arr'
        if inner.startswith('types::Struct'):
            return '%s(&Elem::Struct(&%s))' % (ctor, upper(elem))
        return '%s(&Elem::Leaf(%s))' % (ctor, kind(inner[len('types::'):], None))
    if t.startswith('Struct'):
        return 'Nested(&%s)' % upper(elem)
    raise SystemExit('unknown type ' + t)

def upper(name):
    return re.sub(r'(?<!^)(?=[A-Z])', '_', name).upper()

def elem_of(rust_type):
    m = re.search(r'Vec<(\w+)>', rust_type)
    if m: return m.group(1)
    return rust_type.strip()

out = []
for stem in apis:
    src = open(os.path.join(root, stem + '_request.rs')).read()
    for s in re.findall(r'impl Decodable for (\w+) \{', src):
        b = block(src, s)
        ft = field_types(src, s)
        fields = []
        for name, e in stmts(b):
            if name in ('num_tagged_fields', 'tag', 'size', 'unknown_value', 'unknown_tagged_fields'):
                continue
            for lo, hi, k in kinds(e, 0, MAXV, elem_of(ft.get(name, ''))):
                fields.append('    F { min: %d, max: %d, kind: %s }, // %s' % (lo, hi, k, name))
        m = re.search(r'if version >= (\d+) \{\s*let num_tagged_fields', b)
        if m:
            flex = int(m.group(1))
        elif 'let num_tagged_fields' in b:
            flex = 0  # flexible in every version
        else:
            flex = MAXV
        known = re.findall(r'\n\s*(\d+) => \{\s*(?:if version >= \d+ \{\s*)?\w+ = (types::[^;]*)\.decode', b)
        for tag, t in known:
            if 'Array' in t:
                raise SystemExit('a known tagged field holds an array: %s %s' % (s, t))
        out.append('/// `%s`.\npub(super) static %s: Shape = Shape {\n    flexible: %d,\n    fields: &[\n%s\n    ],\n};\n'
                   % (s, upper(s), flex, '\n'.join('    ' + f for f in fields)))
header = ('//! Generated by scripts/gen-kafka-shapes.py from kafka-protocol 0.18.0\'s\n'
          '//! request decoders: do not edit by hand.\n\n'
          '// Every struct the decoders name is listed, some only reached through\n'
          '// tagged fields (which the check skips by their size).\n'
          '#![allow(dead_code, clippy::all)]\n\n'
          'use super::{Elem, Kind::*, Shape, F};\n\n')
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'broker', 'src', 'kafka', 'shapes_table.rs')
open(path, 'w').write(header + '\n'.join(out))
import subprocess
subprocess.run(['rustfmt', '--edition', '2021', path], check=True)
print('wrote', os.path.normpath(path))
