# services.awk -- writes the chaos runner's services.h from services.tsv (see mk/chaos.mk):
# CHAOS_NSVC and CHAOS_SERVICE_ROWS, the rows of chaos_services in common.c.
# Refuses (exit 1, naming the line) a line without its four fields, a port
# that is not a number, a name given twice or a next that is no service.
/^[ \t]*(#|$)/ { next }
{
    if (NF != 4 || $2 !~ /^[0-9]+$/ || ($1 in seen)) {
        printf "%s:%d: expected \"name port collection next\" with a numeric port and a new name\n", FILENAME, FNR > "/dev/stderr"
        failed = 1
        exit 1
    }
    seen[$1] = 1
    n++
    name[n] = $1; port[n] = $2; coll[n] = $3; next_[n] = $4; line[n] = FNR
}
END {
    if (failed)
        exit 1
    for (i = 1; i <= n; i++)
        if (next_[i] != "-" && !(next_[i] in seen)) {
            printf "%s:%d: next \"%s\" is none of the services\n", FILENAME, line[i], next_[i] > "/dev/stderr"
            exit 1
        }
    if (n == 0) {
        print FILENAME ": no services" > "/dev/stderr"
        exit 1
    }
    print "/* services.h -- generated from services.tsv by chaos/services.awk (mk/chaos.mk): do not edit. */"
    print "#ifndef CHAOS_SERVICES_H"
    print "#define CHAOS_SERVICES_H"
    print ""
    printf "#define CHAOS_NSVC %d\n", n
    print ""
    print "/* { name, default port, collection, next (\"\" for the last) }, in chain order */"
    print "#define CHAOS_SERVICE_ROWS \\"
    for (i = 1; i <= n; i++)
        printf "    { \"%s\", %d, \"%s\", \"%s\" }%s\n", name[i], port[i], coll[i], next_[i] == "-" ? "" : next_[i], i < n ? ", \\" : ""
    print ""
    print "#endif"
}
