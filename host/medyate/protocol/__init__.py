"""The host side of the serial protocol (docs/PROTOCOL.md).

spec           the one description of the protocol (codes, layouts, limits)
gen            generates the device's mdy_protocol.h from spec
framing        COBS + CRC-32 frames
link           Link: requests with seq numbers, timeouts, retries, reconnects
device         Device: typed requests (info, selection, epochs, weights, ...)
order          epoch sample order, identical to the device's
dataset_image  write/read the dataset image the device trains from
transport      PipeSerial: a pyserial-like port over pipes
"""
from .device import Device, DeviceInfo, EvalResult, LayerInfo, Stats
from .link import DeviceError, Link, LinkTimeout, ProtocolError
from .order import epoch_order, visit_order
from .dataset_image import read_dataset_image, write_dataset_image
from .transport import PipeSerial

__all__ = ["Device", "DeviceInfo", "EvalResult", "LayerInfo", "Stats", "DeviceError",
           "Link", "LinkTimeout", "ProtocolError", "epoch_order", "visit_order",
           "read_dataset_image", "write_dataset_image", "PipeSerial"]
