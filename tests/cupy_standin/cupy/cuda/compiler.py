"""cupy.cuda.compiler of the stand-in: the error raised when a kernel does not build."""


class CompileException(Exception):
    def __init__(self, msg, source, name, options, backend="g++"):
        self._msg = msg
        self.source = source
        self.name = name
        self.options = options
        self.backend = backend
        super().__init__(msg)

    def get_message(self):
        return self._msg

    def dump(self, f):
        f.write(self.source)
