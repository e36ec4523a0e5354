# What runs before the examples of every page: a virtual microphone hearing a 440 Hz tone.
import os
import tempfile

from micrec.vmic import VirtualMicrophone

_docs_vm = VirtualMicrophone().start()   # a private PulseAudio server with a microphone "vmic"
_docs_vm.activate()                      # this process's PulseAudio clients now talk to it
_docs_vm.play_tone(440.0, seconds=60.0)  # what the microphone hears
_docs_cwd = os.getcwd()
os.chdir(tempfile.mkdtemp(prefix="micrec-docs-"))  # takes go to a scratch directory
