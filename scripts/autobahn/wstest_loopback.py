# Python 2.7 launcher for `wstest` (autobahntestsuite 25.10.1 is Python-2-only).
#
# The same as the `wstest` console script, except that the fuzzing server's
# WebSocket listener binds 127.0.0.1 instead of every interface (autobahn
# 0.10.9's listenWS() defaults to interface=''): the tests never listen on
# anything but loopback.
import sys

from autobahntestsuite import fuzzing

_listenWS = fuzzing.listenWS


def _listenWS_loopback(factory, contextFactory=None, backlog=50, interface=''):
    return _listenWS(factory, contextFactory, backlog, interface='127.0.0.1')


fuzzing.listenWS = _listenWS_loopback

from autobahntestsuite.wstest import run  # noqa: E402

if __name__ == '__main__':
    sys.argv[0] = 'wstest'
    sys.exit(run())
