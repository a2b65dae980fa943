# doc/gen.awk: fills a template (a man page or the sample shop.conf) from
# the settings table, so the documentation says what the code does. Run by
# the Makefile at build time (POSIX awk; mawk and gawk both do):
#
#   awk -f doc/gen.awk -v settings=SETTINGS.tsv [-v module_src=MODULE.c]
#       [-v notes=NOTES] [-v sysconfdir=...] [-v pkgdatadir=...] [-v docdir=...]
#       [-v sbindir=...] [-v ngxmoduledir=...] [-v ngxmodconfdir=...]
#       [-v version=...] TEMPLATE > OUTPUT
#
# SETTINGS.tsv is doc/settings-dump's output (core/settings.c's table).
# In TEMPLATE:
#   @sysconfdir@ @pkgdatadir@ @docdir@ @sbindir@ @ngxmoduledir@
#   @ngxmodconfdir@ @version@      the values given with -v
#   @def:NAME@ @min:NAME@ @max:NAME@   setting NAME's default and limits
#   a line  .\" @ENVIRONMENT@     shop-fcgi's environment variables (mdoc .It
#                                 entries, inside a .Bl the template opens)
#   a line  .\" @DIRECTIVES@      the module's directives (mdoc .Ss each), the
#                                 directives and their contexts read from the
#                                 module's command tables (module_src: the
#                                 module's C files, space-separated), their
#                                 syntax, default and help from the settings
#                                 table, with NOTES for what the table lacks
#   a line  .\" @VARIABLES@       the module's variables (mdoc .It entries), from
#                                 its ngx_http_variable_t tables and NOTES
#   a line  # @SETTINGS@          every shop-fcgi variable not assigned above
#                                 it, commented out at its default (shop.conf)
#
# NOTES holds, per directive, "@directive NAME" and then optionally
# "@syntax MDOC" (the line after ".It Syntax:"), "@default MDOC", and mdoc
# lines that follow the table's help; per variable, "@variable NAME" (no $)
# and its mdoc. A directive of the module in neither the table nor NOTES, or
# a variable not in NOTES, is written with "Not documented." (the docs test,
# tests/doc/man.sh, fails on it); a table directive the module lacks is left
# out, with a warning on stderr.

BEGIN {
    FS = "\t"
    nset = 0
    if (settings == "") { print "gen.awk: -v settings=FILE is required" > "/dev/stderr"; exit 2 }
    while ((rc = getline line < settings) > 0) {
        n = split(line, f, "\t")
        if (n != 9) { print "gen.awk: " settings ": bad line: " line > "/dev/stderr"; exit 2 }
        nset++
        s_name[nset] = f[1]; s_env[nset] = f[2]; s_dir[nset] = f[3]; s_type[nset] = f[4]
        s_scope[nset] = f[5]; s_def[nset] = f[6]; s_min[nset] = f[7]; s_max[nset] = f[8]
        s_help[nset] = f[9]
        by_name[f[1]] = nset
        if (f[3] != "-") by_dir[f[3]] = nset
    }
    if (rc < 0 || nset == 0) { print "gen.awk: cannot read " settings > "/dev/stderr"; exit 2 }
    close(settings)

    ncmd = 0
    if (module_src != "") {
        nsrc = split(module_src, srcs, " ")
        for (k = 1; k <= nsrc; k++) read_module(srcs[k])
        if (ncmd == 0) { print "gen.awk: no ngx_command_t table in " module_src > "/dev/stderr"; exit 2 }
    }
    if (notes != "") read_notes()
}

# ------------------------------------------------------------ the module source

function read_module(module_src,    line, cont, in_cmds, in_vars, name, want_flags, m, rest, body) {
    in_cmds = 0; in_vars = 0; want_flags = ""
    while ((getline line < module_src) > 0) {
        while (line ~ /\\$/ && (getline cont < module_src) > 0) {
            sub(/\\$/, "", line)
            line = line " " cont
        }
        if (line ~ /^#[ \t]*define[ \t]+[A-Za-z_][A-Za-z0-9_]*[ \t]/) {
            rest = line
            sub(/^#[ \t]*define[ \t]+/, "", rest)
            m = rest; sub(/[ \t].*$/, "", m)
            body = rest; sub(/^[A-Za-z0-9_]+[ \t]+/, "", body)
            defines[m] = body
            continue
        }
        if (line ~ /ngx_command_t[ \t]+[A-Za-z0-9_]+\[\]/) { in_cmds = 1; continue }
        if (line ~ /ngx_http_variable_t[ \t]+[A-Za-z0-9_]+\[\]/) { in_vars = 1; continue }
        if (in_cmds) {
            if (line ~ /ngx_null_command/) { in_cmds = 0; continue }
            if (want_flags != "" && line ~ /[A-Z]/) {
                cmd_flags(want_flags, line)
                want_flags = ""
                continue
            }
            if (match(line, /ngx_string\("[^"]*"\)/)) {
                name = substr(line, RSTART + 12, RLENGTH - 14)
                ncmd++
                c_name[ncmd] = name
                is_cmd[name] = 1
                rest = substr(line, RSTART + RLENGTH)
                if (rest ~ /[A-Z]/) cmd_flags(name, rest)
                else want_flags = name
            }
        }
        if (in_vars) {
            if (line ~ /ngx_http_null_variable/) { in_vars = 0; continue }
            if (match(line, /ngx_string\("[^"]*"\)/)) {
                nvar++
                v_name[nvar] = substr(line, RSTART + 12, RLENGTH - 14)
            }
        }
    }
    close(module_src)
}

# cmd_flags NAME TEXT: the contexts and the argument count of a command's
# type field ("NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,"), macros expanded.
function cmd_flags(name, text,    toks, n, i, t, ctx, args) {
    sub(/,.*$/, "", text)
    text = expand(text, 0)
    gsub(/[() \t]/, "", text)
    n = split(text, toks, "|")
    ctx = ""; args = "?"
    for (i = 1; i <= n; i++) {
        t = toks[i]
        if (t == "NGX_HTTP_MAIN_CONF") ctx = ctx ", http"
        else if (t == "NGX_HTTP_SRV_CONF") ctx = ctx ", server"
        else if (t == "NGX_HTTP_LOC_CONF") ctx = ctx ", location"
        else if (t == "NGX_HTTP_SIF_CONF") ctx = ctx ", if in server"
        else if (t == "NGX_HTTP_LIF_CONF") ctx = ctx ", if in location"
        else if (t == "NGX_HTTP_LMT_CONF") ctx = ctx ", limit_except"
        else if (t == "NGX_HTTP_UPS_CONF") ctx = ctx ", upstream"
        else if (t == "NGX_MAIN_CONF" || t == "NGX_DIRECT_CONF") ctx = ctx ", main"
        else if (t ~ /^NGX_CONF_/) args = t
    }
    sub(/^, /, "", ctx)
    c_ctx[name] = ctx
    c_args[name] = args
}

# expand TEXT DEPTH: TEXT with the file's object-like macros expanded.
function expand(text, depth,    out, tok, rest, next_at) {
    if (depth > 4) return text
    out = ""
    rest = text
    while (match(rest, /[A-Za-z_][A-Za-z0-9_]*/)) {
        tok = substr(rest, RSTART, RLENGTH)
        out = out substr(rest, 1, RSTART - 1)
        next_at = RSTART + RLENGTH          # the recursion below moves RSTART
        if (tok in defines) out = out "(" expand(defines[tok], depth + 1) ")"
        else out = out tok
        rest = substr(rest, next_at)
    }
    return out rest
}

# -------------------------------------------------------------------- notes

function read_notes(    line, cur) {
    cur = ""
    while ((getline line < notes) > 0) {
        if (line ~ /^@(directive|variable)[ \t]/) {
            cur = line; sub(/^@[a-z]+[ \t]+/, "", cur); sub(/[ \t]+$/, "", cur)
            if (line ~ /^@variable/) cur = "$" cur
            has_note[cur] = 1
            n_body[cur] = ""
            continue
        }
        if (cur == "") continue
        if (line ~ /^@syntax[ \t]/) { sub(/^@syntax[ \t]+/, "", line); n_syntax[cur] = line; continue }
        if (line ~ /^@default[ \t]/) { sub(/^@default[ \t]+/, "", line); n_default[cur] = line; continue }
        n_body[cur] = n_body[cur] line "\n"
    }
    close(notes)
}

# -------------------------------------------------------------- formatting

# subst TEXT: the @...@ placeholders.
function subst(text,    out, key, i, what, name, val) {
    out = ""
    while (match(text, /@[a-z]+(:[a-z_]+)?@/)) {
        key = substr(text, RSTART + 1, RLENGTH - 2)
        out = out substr(text, 1, RSTART - 1)
        text = substr(text, RSTART + RLENGTH)
        if (index(key, ":") > 0) {
            what = substr(key, 1, index(key, ":") - 1)
            name = substr(key, index(key, ":") + 1)
            if (!(name in by_name)) { print "gen.awk: unknown setting in @" key "@" > "/dev/stderr"; failed = 1; continue }
            i = by_name[name]
            if (what == "def") val = s_def[i]
            else if (what == "min") val = s_min[i]
            else if (what == "max") val = s_max[i]
            else { print "gen.awk: unknown placeholder @" key "@" > "/dev/stderr"; failed = 1; continue }
            out = out val
            continue
        }
        if (key == "sysconfdir") out = out sysconfdir
        else if (key == "pkgdatadir") out = out pkgdatadir
        else if (key == "docdir") out = out docdir
        else if (key == "sbindir") out = out sbindir
        else if (key == "ngxmoduledir") out = out ngxmoduledir
        else if (key == "ngxmodconfdir") out = out ngxmodconfdir
        else if (key == "version") out = out version
        else { print "gen.awk: unknown placeholder @" key "@" > "/dev/stderr"; failed = 1 }
    }
    return out text
}

# Text for a roff text line: backslashes escaped, no leading dot or quote.
function roff(text) {
    gsub(/\\/, "\\e", text)
    if (text ~ /^[.']/) text = "\\&" text
    return text
}

# sentence TEXT: the table's help as a sentence (names such as libpq keep
# their case).
function sentence(text) {
    if (text !~ /^(libpq|nginx|shop-fcgi)[ ]/) text = toupper(substr(text, 1, 1)) substr(text, 2)
    if (text !~ /[.!?)]$/) text = text "."
    else if (text ~ /\)$/) text = text "."
    return text
}

# What values a setting takes, as a phrase.
function values(i,    t) {
    t = s_type[i]
    if (t == "integer") return "An integer from " s_min[i] " to " s_max[i]
    if (t == "size") return "A size in bytes, or with a k or m suffix, from " s_min[i] " to " s_max[i]
    if (t == "duration") return "A duration (ms, s, m or h; a bare number is milliseconds) from " s_min[i] " to " s_max[i]
    if (t == "on/off") return "On or off (also 1 or 0, true or false, yes or no)"
    if (t == "file") return "An absolute file name"
    return "A string"
}

function argname(i,    t) {
    t = s_type[i]
    if (t == "integer") return "number"
    if (t == "size") return "size"
    if (t == "duration") return "time"
    if (t == "on/off") return "on | off"
    if (t == "file") return "file"
    if (s_name[i] ~ /database/) return "dsn"
    return "string"
}

function print_environment(    i) {
    for (i = 1; i <= nset; i++) {
        if (s_env[i] == "-" || s_scope[i] == "module") continue
        print ".It Ev " s_env[i]
        print roff(sentence(s_help[i]))
        print roff(values(i)) "; default:"
        if (s_def[i] == "") print "unset."
        else print ".Ql " s_def[i] " ."
    }
}

function print_directive(name,    i, a) {
    i = (name in by_dir) ? by_dir[name] : 0
    print ".Ss " name
    print ".Bl -tag -width Context: -compact"
    print ".It Syntax:"
    if (name in n_syntax) print subst(n_syntax[name])
    else if (i) {
        a = argname(i)
        if (a == "on | off") print ".Ic " name " Cm on | off ;"
        else print ".Ic " name " Ar " a " ;"
    } else print ".Ic " name " Ar ... ;"
    print ".It Default:"
    if (name in n_default) print subst(n_default[name])
    else if (i && s_def[i] != "") print ".Ic " name " " s_def[i] " ;"
    else print "\\(em"
    print ".It Context:"
    print (name in c_ctx && c_ctx[name] != "") ? c_ctx[name] : "\\(em"
    print ".El"
    print ".Pp"
    if (i) {
        print roff(sentence(s_help[i]))
        if (s_type[i] != "string" && s_type[i] != "file") print roff(values(i)) "."
    }
    if (name in has_note) {
        if (i) print ".Pp"
        printf "%s", subst(n_body[name])
    }
    if (!i && !(name in has_note)) print "Not documented."
}

function print_directives(    k, i) {
    for (k = 1; k <= ncmd; k++) print_directive(c_name[k])
    for (i = 1; i <= nset; i++) {
        if (s_dir[i] != "-" && s_scope[i] != "fcgi" && !(s_dir[i] in is_cmd)) {
            print "gen.awk: warning: the settings table names directive " s_dir[i] \
                  " but the module has no such command; not documented" > "/dev/stderr"
        }
    }
}

function print_variables(    k, name) {
    for (k = 1; k <= nvar; k++) {
        name = "$" v_name[k]
        print ".It Va " name
        if (name in has_note) printf "%s", subst(n_body[name])
        else print "Not documented."
    }
}

function print_conf_settings(    i) {
    for (i = 1; i <= nset; i++) {
        if (s_env[i] == "-" || s_scope[i] == "module" || (s_env[i] in assigned)) continue
        print ""
        print "# " sentence(s_help[i])
        print "# " values(i) "."
        print "#" s_env[i] "=" s_def[i]
    }
}

# ----------------------------------------------------------------- template

/^\.\\" @ENVIRONMENT@[ \t]*$/ { print_environment(); next }
/^\.\\" @DIRECTIVES@[ \t]*$/ {
    if (ncmd == 0) { print "gen.awk: @DIRECTIVES@ needs -v module_src=" > "/dev/stderr"; exit 2 }
    print_directives(); next
}
/^\.\\" @VARIABLES@[ \t]*$/ {
    if (ncmd == 0) { print "gen.awk: @VARIABLES@ needs -v module_src=" > "/dev/stderr"; exit 2 }
    print_variables(); next
}
/^# @SETTINGS@[ \t]*$/ { print_conf_settings(); next }
/^[A-Z][A-Z0-9_]*=/ { v = $0; sub(/=.*$/, "", v); assigned[v] = 1 }
{ print subst($0) }

END { if (failed) exit 1 }
