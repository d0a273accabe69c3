"""Writes the hand-built hostile fixtures under tests/fixtures/hostile/ (Python's standard
library only: no torch needed, the file is built the way torch.save lays it out).

    python3 scripts/make_hostile.py

os_system.pth is a state dict of one 2-element float tensor (`weight`, values 1.5 and -2.0)
plus an entry whose pickle calls `os.system("echo pwned")` when Python unpickles it (pickled
as the global `posix.system`): `torch.load(weights_only=True)` refuses it, and so must we
unless told to trust it.

stride0.pth is what `torch.save({"weight": torch.zeros(1).expand(2_600_000_000)}, f)` writes:
one stored float and a view declaring 2.6 billion elements with stride 0. A reader that
materialises views before checking anything allocates 10.4 GB for it.
"""

import collections
import os
import pickle
import sys
import types
import zipfile

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "hostile")


def torch_stubs():
    """Stand-ins for the two globals torch.save's pickle names (by module and name only)."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args):
        raise RuntimeError("a stub: never called")

    FloatStorage.__module__ = "torch"
    FloatStorage.__qualname__ = "FloatStorage"
    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    torch.FloatStorage = FloatStorage
    torch._utils = utils
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    sys.modules["torch"] = torch
    sys.modules["torch._utils"] = utils
    return FloatStorage, _rebuild_tensor_v2


FloatStorage, rebuild = torch_stubs()


class Storage:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class View:
    """A tensor as torch pickles it: _rebuild_tensor_v2(storage, offset, size, stride, ...)."""

    def __init__(self, storage, size, stride):
        self.storage, self.size, self.stride = storage, size, stride

    def __reduce__(self):
        return (rebuild, (self.storage, 0, self.size, self.stride, False, collections.OrderedDict()))


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", FloatStorage, obj.key, "cpu", obj.numel)
        return None


def write_pth(path, state, storages):
    """A torch.save zip: <name>/data.pkl, <name>/data/<key> raw little-endian storages."""
    import io

    buffer = io.BytesIO()
    TorchPickler(buffer, protocol=2).dump(state)
    name = os.path.splitext(os.path.basename(path))[0]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{name}/data.pkl", buffer.getvalue())
        zf.writestr(f"{name}/byteorder", "little")
        for key, data in storages.items():
            zf.writestr(f"{name}/data/{key}", data)
        zf.writestr(f"{name}/version", "3\n")


class RunsCode:
    """Unpickles to `os.system("echo pwned")`."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    one = Storage("0", 1)
    write_pth(
        os.path.join(OUT, "stride0.pth"),
        {"weight": View(one, (2_600_000_000,), (0,))},
        {"0": b"\x00\x00\x00\x00"},
    )
    import struct

    write_pth(
        os.path.join(OUT, "os_system.pth"),
        collections.OrderedDict(
            [("weight", View(Storage("0", 2), (2,), (1,))), ("evil", RunsCode())]
        ),
        {"0": struct.pack("<2f", 1.5, -2.0)},
    )
    for name in sorted(os.listdir(OUT)):
        print(f"{name}: {os.path.getsize(os.path.join(OUT, name))} bytes")
