"""The few `torch` functions the challenge's `metric.py` calls, on numpy, so that the official
scorer runs unchanged in CI without PyTorch or a GPU.

Each function keeps torch's semantics where the scorer's result depends on them:

- dtypes: `torch.from_numpy` keeps float64, `zeros` / `ones` / `full` / `linspace` default to
  float32, comparisons give bool, `.type(torch.float32)` converts; binary operations promote
  as torch does for these operands (float64 tensor against float32 tensor: float64; a Python
  number against a float32 tensor: float32), which numpy's rules reproduce here;
- `torch.linspace(start, end, steps)` without a dtype returns float32 values computed as
  ATen's CPU kernel does: start and end rounded to float32, step = (end − start)/(steps − 1)
  in float32, element i = start + step·i below steps/2 and end − step·(steps − 1 − i) from
  there (the scorer then compares float64 confidences with these float32 thresholds). ATen's
  vectorised loop builds 8 or 16 lanes from one base value and may round an interior element
  differently by one float32 unit; this follows the scalar formula;
- `torch.tile` returns a broadcast view instead of a copy: the same values, without the copy's
  memory (the double-threshold family tiles [models × rules] matrices);
- `.cuda()`, `.cpu()` and `.detach()` return the tensor itself.
"""

import numpy as np

float32 = np.float32
float64 = np.float64


def _array(value):
    return value.array if isinstance(value, Tensor) else value


class Tensor:
    """A numpy array with the tensor methods the scorer uses."""

    __array_priority__ = 1000

    def __init__(self, array):
        self.array = np.asarray(array)

    # Devices and autograd: no-ops.
    def cuda(self):
        return self

    def cpu(self):
        return self

    def detach(self):
        return self

    def numpy(self):
        return self.array

    @property
    def shape(self):
        return self.array.shape

    def type(self, dtype):
        return Tensor(self.array.astype(dtype))

    def max(self):
        return Tensor(self.array.max())

    def min(self):
        return Tensor(self.array.min())

    def reshape(self, *shape):
        return Tensor(self.array.reshape(*shape))

    def __getitem__(self, index):
        return Tensor(self.array[index])

    def __len__(self):
        return len(self.array)

    def __bool__(self):
        return bool(self.array)

    def __int__(self):
        return int(self.array)

    def __float__(self):
        return float(self.array)

    def _binary(self, other, operation):
        return Tensor(operation(self.array, _array(other)))

    def __add__(self, other):
        return self._binary(other, np.add)

    def __radd__(self, other):
        return Tensor(np.add(_array(other), self.array))

    def __sub__(self, other):
        return self._binary(other, np.subtract)

    def __rsub__(self, other):
        return Tensor(np.subtract(_array(other), self.array))

    def __mul__(self, other):
        if self.array.dtype == bool and np.asarray(_array(other)).dtype == bool:
            return self._binary(other, np.logical_and)
        return self._binary(other, np.multiply)

    def __rmul__(self, other):
        return Tensor(np.multiply(_array(other), self.array))

    def __ge__(self, other):
        return self._binary(other, np.greater_equal)

    def __gt__(self, other):
        return self._binary(other, np.greater)

    def __le__(self, other):
        return self._binary(other, np.less_equal)

    def __lt__(self, other):
        return self._binary(other, np.less)


def from_numpy(array):
    return Tensor(array)


def cat(tensors, dim=0):
    return Tensor(np.concatenate([_array(t) for t in tensors], axis=dim))


def tile(tensor, reps):
    array = _array(tensor)
    shape = tuple(size * rep for size, rep in zip(array.shape, reps))
    # Every dimension the scorer tiles has size 1, so tiling is broadcasting.
    assert all(size == 1 or rep == 1 for size, rep in zip(array.shape, reps))
    return Tensor(np.broadcast_to(array, shape))


def ceil(tensor):
    return Tensor(np.ceil(_array(tensor)))


def linspace(start, end, steps):
    steps = int(steps)
    if steps == 0:
        return Tensor(np.zeros(0, dtype=np.float32))
    first = np.float32(float(start))
    last = np.float32(float(end))
    if steps == 1:
        return Tensor(np.array([first], dtype=np.float32))
    step = np.float32((last - first) / np.float32(steps - 1))
    index = np.arange(steps)
    halfway = steps // 2
    below = first + step * index.astype(np.float32)
    above = last - step * (steps - index - 1).astype(np.float32)
    return Tensor(np.where(index < halfway, below, above).astype(np.float32))


def le(a, b):
    return Tensor(np.less_equal(_array(a), _array(b)))


def eq(a, b):
    return Tensor(np.equal(_array(a), _array(b)))


def logical_and(a, b):
    return Tensor(np.logical_and(_array(a), _array(b)))


def logical_not(a):
    return Tensor(np.logical_not(_array(a)))


def mean(tensor, dim):
    array = _array(tensor)
    # torch keeps float32 means of float32 tensors (sums of 0/1 here are exact).
    return Tensor((array.sum(axis=dim, dtype=array.dtype) / array.shape[dim]).astype(array.dtype))


def zeros(size):
    return Tensor(np.zeros(size, dtype=np.float32))


def ones(size):
    return Tensor(np.ones(size, dtype=np.float32))


def full(shape, value):
    return Tensor(np.full(shape, value, dtype=np.float32))


def zeros_like(tensor):
    return Tensor(np.zeros_like(_array(tensor)))


def where(condition, a, b):
    a, b = _array(a), _array(b)
    return Tensor(np.where(_array(condition), a, b).astype(np.result_type(a, b)))
