#!/usr/bin/perl
# startup.pl: phased runs it in the master at post-config, on every
# configuration pass (twice at start, once per graceful restart), before
# any child of the new generation starts: Apache's PerlPostConfigRequire,
# the startup.pl that preloads what every child needs.
#
# It checks each template in templates/ (every {{placeholder}} must be one
# the app fills) and compiles them into var/templates.pl, which app.psgi
# loads when a Starman worker starts. A template with a mistake fails the
# script: phased refuses the new configuration, and on a graceful restart
# the old generation keeps serving, with the templates it had.
use strict;
use warnings;
use Data::Dumper;
use File::Basename qw(dirname);
use File::Spec;

my $dir = File::Spec->rel2abs(dirname(__FILE__));
my %known = map { $_ => 1 } qw(title pid generation compiled_for);
my $gen = $ENV{PHASED_GENERATION} // 0;
my $dry = ($ENV{PHASED_DRY_RUN} // '') eq '1';

my %compiled;
my $errors = 0;
opendir(my $dh, "$dir/templates") or die "startup.pl: cannot read $dir/templates: $!\n";
for my $file (sort grep { /\.tmpl$/ } readdir $dh) {
    my $path = "templates/$file";
    open(my $fh, '<', "$dir/$path") or die "startup.pl: cannot read $path: $!\n";
    my @parts;    # text and placeholders, in order
    my $line = 0;
    while (my $text = <$fh>) {
        $line++;
        if ($text =~ s/\{\{[a-z_]+\}\}//gr =~ /\{\{|\}\}/) {
            print STDERR "startup.pl: $path line $line: unbalanced {{ }}\n";
            $errors++;
        }
        for my $name ($text =~ /\{\{([a-z_]+)\}\}/g) {
            next if $known{$name};
            print STDERR "startup.pl: $path line $line: unknown placeholder {{$name}} (known: "
              . join(', ', map {"{{$_}}"} sort keys %known) . ")\n";
            $errors++;
        }
        push @parts, split /(\{\{[a-z_]+\}\})/, $text;
    }
    close $fh;
    $compiled{ $file =~ s/\.tmpl$//r } = [grep { length } @parts];
}
closedir $dh;
die "startup.pl: $errors error(s) in templates/; nothing compiled\n" if $errors;

open(my $tfh, '<', "$dir/templates/title.txt") or die "startup.pl: cannot read templates/title.txt: $!\n";
chomp(my $title = <$tfh> // '');
close $tfh;

if ($dry || ($ENV{PHASED_PASS} // '') eq '1') {
    # phased -t, and the first pass at start, only check: the second pass
    # compiles, just before the children start.
    print "startup.pl: " . scalar(keys %compiled) . " template(s) checked (pass "
      . ($ENV{PHASED_PASS} // '?') . ", dry run: " . ($dry ? 1 : 0) . ")\n";
    exit 0;
}
mkdir "$dir/var" unless -d "$dir/var";
my $out = "$dir/var/templates.pl";
open(my $ofh, '>', "$out.tmp") or die "startup.pl: cannot write $out.tmp: $!\n";
local $Data::Dumper::Sortkeys = 1;
print $ofh Data::Dumper->Dump([{ templates => \%compiled, title => $title, generation => $gen }], ['compiled']);
close $ofh or die "startup.pl: writing $out.tmp: $!\n";
rename "$out.tmp", $out or die "startup.pl: cannot rename $out.tmp: $!\n";
print "startup.pl: compiled " . join(', ', sort keys %compiled) . " for generation $gen into var/templates.pl\n";
