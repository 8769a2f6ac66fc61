//! `gpuq.encode`, `gpuq.decode`, `gpuq.types`: the library's codecs on numpy arrays.
//!
//! Arrays are laid out as gguf-py lays them out (`gguf.quants.quantize` / `dequantize`): rows
//! along the last axis, an encoded array of shape `(*shape[:-1], row_bytes)` in uint8. A
//! C-contiguous float32 input (and a C-contiguous uint8 or bytes input to decode) is read in
//! place; anything else is first converted by numpy (`ascontiguousarray`), a copy. The output
//! is allocated once by numpy and written in place. The GIL is released while rows are
//! encoded or decoded.

use crate::engines::{engine, parse_backend};
use crate::{GpuqError, to_py};
use gpuq::GgmlType;
use gpuq::codec::shape;
use numpy::{
    PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// A ggml type by name (`"Q4_K"`, `"q8_0"`, `"bf16"`).
pub fn parse_type(name: &str) -> PyResult<GgmlType> {
    name.parse().map_err(GpuqError::new_err)
}

/// `obj` as a C-contiguous float32 array: itself when it is one, else numpy's conversion.
fn f32_array<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    if let Ok(a) = obj.cast::<PyArrayDyn<f32>>()
        && a.is_c_contiguous()
    {
        return Ok(a.clone());
    }
    let np = obj.py().import("numpy")?;
    let a = np.call_method1("ascontiguousarray", (obj, np.getattr("float32")?))?;
    Ok(a.cast_into::<PyArrayDyn<f32>>()?)
}

/// `obj` (bytes, bytearray, memoryview, or a numpy array of any dtype) as C-contiguous
/// uint8: arrays are viewed as their bytes (`ascontiguousarray(obj).view(uint8)`, so the last
/// axis counts bytes), anything else through `numpy.frombuffer` (one axis). No copy when the
/// input already is contiguous.
fn u8_array<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArrayDyn<u8>>> {
    if let Ok(a) = obj.cast::<PyArrayDyn<u8>>()
        && a.is_c_contiguous()
    {
        return Ok(a.clone());
    }
    let np = obj.py().import("numpy")?;
    let u8 = np.getattr("uint8")?;
    let a = if obj.cast::<PyUntypedArray>().is_ok() {
        np.call_method1("ascontiguousarray", (obj,))?
            .call_method1("view", (u8,))?
    } else {
        np.call_method1("frombuffer", (obj, u8))?
    };
    Ok(a.cast_into::<PyArrayDyn<u8>>()?)
}

fn slice_err(e: numpy::AsSliceError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// `gpuq.encode(array, type, imatrix=None, backend="auto") -> numpy.ndarray[uint8]`
#[pyfunction]
#[pyo3(signature = (array, r#type, imatrix = None, backend = "auto"))]
pub fn encode<'py>(
    py: Python<'py>,
    array: &Bound<'py, PyAny>,
    r#type: &str,
    imatrix: Option<&Bound<'py, PyAny>>,
    backend: &str,
) -> PyResult<Bound<'py, PyArrayDyn<u8>>> {
    let ty = parse_type(r#type)?;
    let backend = parse_backend(backend)?;
    let src: PyReadonlyArrayDyn<f32> = f32_array(array)?.readonly();
    let dims = src.shape().to_vec();
    let Some((&row_len, outer)) = dims.split_last() else {
        return Err(PyValueError::new_err(
            "encode: a 0-d array has no rows (rows are the last axis)",
        ));
    };
    let values = src.as_slice().map_err(slice_err)?;
    let rows = shape::rows(ty, row_len, values.len()).map_err(|e| to_py(e.into()))?;
    let weights: Option<PyReadonlyArrayDyn<f32>> = match imatrix {
        Some(w) => Some(f32_array(w)?.readonly()),
        None => None,
    };
    let weights = match &weights {
        Some(w) => Some(w.as_slice().map_err(slice_err)?),
        None => None,
    };
    let mut out_dims = outer.to_vec();
    out_dims.push(rows.row_bytes);
    let out = PyArrayDyn::<u8>::zeros(py, out_dims, false);
    {
        let mut rw = out.readwrite();
        let dst = rw.as_slice_mut().map_err(slice_err)?;
        py.detach(|| engine(backend)?.encode_into(ty, values, row_len, weights, dst))
            .map_err(to_py)?;
    }
    Ok(out)
}

/// `gpuq.decode(data, type, shape=None, backend="auto") -> numpy.ndarray[float32]`
#[pyfunction]
#[pyo3(signature = (data, r#type, shape = None, backend = "auto"))]
pub fn decode<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    r#type: &str,
    shape: Option<Vec<usize>>,
    backend: &str,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let ty = parse_type(r#type)?;
    let backend = parse_backend(backend)?;
    let src: PyReadonlyArrayDyn<u8> = u8_array(data)?.readonly();
    let bytes = src.as_slice().map_err(slice_err)?;
    let out_dims = match shape {
        Some(s) => s,
        None => {
            // gguf-py's quant_shape_from_byte_shape: the last axis holds whole blocks
            let mut d = src.shape().to_vec();
            let last = d.last_mut().ok_or_else(|| {
                PyValueError::new_err("decode: a 0-d array holds no rows; pass shape=")
            })?;
            let (be, bb) = (ty.block_elems() as usize, ty.block_bytes() as usize);
            if bb == 0 || *last % bb != 0 {
                return Err(GpuqError::new_err(format!(
                    "{ty}: the last axis has {} bytes, not a whole number of {bb}-byte blocks",
                    *last
                )));
            }
            *last = *last / bb * be;
            d
        }
    };
    let Some(&row_len) = out_dims.last() else {
        return Err(PyValueError::new_err(
            "decode: shape=() has no rows (rows are the last axis)",
        ));
    };
    let n: usize = out_dims.iter().product();
    let want = shape::rows(ty, row_len, n).map_err(|e| to_py(e.into()))?;
    if want.n_rows * want.row_bytes != bytes.len() {
        return Err(GpuqError::new_err(format!(
            "{ty}: shape {out_dims:?} needs {} bytes ({} rows of {}), the data has {}",
            want.n_rows * want.row_bytes,
            want.n_rows,
            want.row_bytes,
            bytes.len()
        )));
    }
    let out = PyArrayDyn::<f32>::zeros(py, out_dims, false);
    {
        let mut rw = out.readwrite();
        let dst = rw.as_slice_mut().map_err(slice_err)?;
        py.detach(|| engine(backend)?.decode_into(ty, bytes, row_len, dst))
            .map_err(to_py)?;
    }
    Ok(out)
}

/// `gpuq.types() -> dict[str, dict]`: every type the codecs know, by name: whether gpuq
/// encodes and decodes it, its block (elements, bytes).
#[pyfunction]
pub fn types(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let out = PyDict::new(py);
    for c in gpuq::codec::cpu_codecs() {
        let d = PyDict::new(py);
        d.set_item("encode", c.encode.is_some())?;
        d.set_item("decode", c.decode.is_some())?;
        d.set_item("block_elems", c.ty.block_elems())?;
        d.set_item("block_bytes", c.ty.block_bytes())?;
        out.set_item(c.ty.name(), d)?;
    }
    Ok(out)
}
