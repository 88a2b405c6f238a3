# A PSGI app served by Starman under phased; see README.md.
#
# Its page comes from var/templates.pl, which startup.pl compiles at
# post-config, in the master, before any child of a generation starts: each
# Starman worker loads it once, when it starts.
use strict;
use warnings;
use Digest::SHA qw(sha256_hex);
use File::Basename qw(dirname);
use File::Spec;
use JSON::PP qw(encode_json);
use Time::HiRes qw(sleep time);

my $dir = File::Spec->rel2abs(dirname(__FILE__));
my $compiled = do "$dir/var/templates.pl";
die "app.psgi: $dir/var/templates.pl: " . ($@ || $! || 'no templates') . " (startup.pl compiles it at post-config)\n"
  unless ref $compiled eq 'HASH';
my @hoard;    # what /alloc keeps, so the process grows

sub json {
    my ($obj, $status) = @_;
    my $body = encode_json($obj);
    return [$status // 200, ['Content-Type' => 'application/json', 'Content-Length' => length $body], [$body]];
}

sub render {
    my ($name, %vars) = @_;
    my $parts = $compiled->{templates}{$name} or return undef;
    return join '', map { /^\{\{([a-z_]+)\}\}$/ ? ($vars{$1} // '') : $_ } @$parts;
}

my $app = sub {
    my $env = shift;
    my $path = $env->{PATH_INFO} || '/';
    my %q = map { split /=/, $_, 2 } grep { /=/ } split /&/, ($env->{QUERY_STRING} // '');
    if ($path eq '/') {
        # Starman sets no SERVER_SOFTWARE; its modules are in %INC.
        my $server = $env->{SERVER_SOFTWARE} || ($INC{'Starman/Server.pm'} ? do { require Starman; "Starman $Starman::VERSION" } : '');
        return json({ app => 'perl', pid => $$, server => $server });
    }
    if ($path eq '/health') {
        return [200, ['Content-Type' => 'text/plain', 'Content-Length' => 3], ["ok\n"]];
    }
    if ($path eq '/page') {
        my $html = render('page', title => $compiled->{title}, pid => $$,
            generation => $ENV{PHASED_GENERATION} // '', compiled_for => $compiled->{generation});
        return [200, ['Content-Type' => 'text/html; charset=utf-8'], [$html]];
    }
    if ($path eq '/echo') {
        my $body = '';
        my $input = $env->{'psgi.input'};
        while ($input->read(my $buf, 65536)) { $body .= $buf }
        return json({ pid => $$, method => $env->{REQUEST_METHOD}, length => length $body, sha256 => sha256_hex($body) });
    }
    if ($path eq '/stream') {
        my ($n, $ms) = ($q{n} // 5, $q{ms} // 200);
        return sub {
            my $responder = shift;
            my $w = $responder->([200, ['Content-Type' => 'text/plain', 'X-Accel-Buffering' => 'no']]);
            for my $i (0 .. $n - 1) {
                $w->write(sprintf("piece %d at %.3f\n", $i, time));
                sleep($ms / 1000);
            }
            $w->close;
        };
    }
    if ($path eq '/slow') {
        my $ms = $q{ms} // 1000;
        sleep($ms / 1000);
        print STDERR "pid $$: slow request done after $ms ms\n";
        return json({ pid => $$, slept_ms => $ms + 0 });
    }
    if ($path eq '/alloc') {
        push @hoard, 'x' x (($q{mb} // 100) << 20);
        my $mb = 0;
        $mb += length($_) >> 20 for @hoard;
        return json({ pid => $$, hoard_mb => $mb });
    }
    return [404, ['Content-Type' => 'text/plain', 'Content-Length' => 10], ["not found\n"]];
};
