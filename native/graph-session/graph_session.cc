// selfsup's graph addon: a thin N-API layer over TensorFlow's C API that builds
// a graph op by op, adds its symbolic gradients, and runs it in a session whose
// graph optimiser (grappler) is configured by a serialized ConfigProto.
//
// Every function is synchronous, like tfjs-node's binding. Operation outputs are
// named "op:index". Handles (graphs, sessions) are JS externals that free their
// native object when collected; close()/deleteGraph() free them earlier.
#include <node_api.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "tensorflow/c/c_api.h"

namespace {

#define CHECK_NAPI(call)                                          \
  do {                                                            \
    if ((call) != napi_ok) {                                      \
      napi_throw_error(env, nullptr, "N-API call failed: " #call); \
      return nullptr;                                             \
    }                                                             \
  } while (0)

struct GraphHandle {
  TF_Graph* graph = nullptr;
};

struct SessionHandle {
  TF_Session* session = nullptr;
  napi_ref graph_ref = nullptr;  // keeps the graph alive while the session is
};

napi_value Throw(napi_env env, const std::string& message) {
  napi_throw_error(env, nullptr, message.c_str());
  return nullptr;
}

bool GetString(napi_env env, napi_value value, std::string* out) {
  size_t length = 0;
  if (napi_get_value_string_utf8(env, value, nullptr, 0, &length) != napi_ok) return false;
  out->resize(length);
  std::vector<char> buffer(length + 1);
  if (napi_get_value_string_utf8(env, value, buffer.data(), length + 1, &length) != napi_ok) return false;
  out->assign(buffer.data(), length);
  return true;
}

bool GetNamed(napi_env env, napi_value object, const char* key, napi_value* out) {
  bool has = false;
  if (napi_has_named_property(env, object, key, &has) != napi_ok || !has) return false;
  return napi_get_named_property(env, object, key, out) == napi_ok;
}

uint32_t ArrayLength(napi_env env, napi_value array) {
  uint32_t length = 0;
  napi_get_array_length(env, array, &length);
  return length;
}

napi_value Element(napi_env env, napi_value array, uint32_t i) {
  napi_value v = nullptr;
  napi_get_element(env, array, i, &v);
  return v;
}

int64_t Int(napi_env env, napi_value v) {
  int64_t out = 0;
  napi_get_value_int64(env, v, &out);
  return out;
}

double Double(napi_env env, napi_value v) {
  double out = 0;
  napi_get_value_double(env, v, &out);
  return out;
}

std::vector<int64_t> Ints(napi_env env, napi_value array) {
  std::vector<int64_t> out;
  uint32_t n = ArrayLength(env, array);
  for (uint32_t i = 0; i < n; i++) out.push_back(Int(env, Element(env, array, i)));
  return out;
}

void FinalizeGraph(napi_env, void* data, void*) {
  auto* handle = static_cast<GraphHandle*>(data);
  if (handle->graph) TF_DeleteGraph(handle->graph);
  delete handle;
}

void FinalizeSession(napi_env env, void* data, void*) {
  auto* handle = static_cast<SessionHandle*>(data);
  if (handle->session) {
    TF_Status* status = TF_NewStatus();
    TF_CloseSession(handle->session, status);
    TF_DeleteSession(handle->session, status);
    TF_DeleteStatus(status);
  }
  if (handle->graph_ref) napi_delete_reference(env, handle->graph_ref);
  delete handle;
}

GraphHandle* UnwrapGraph(napi_env env, napi_value v) {
  void* data = nullptr;
  if (napi_get_value_external(env, v, &data) != napi_ok || !data) return nullptr;
  auto* handle = static_cast<GraphHandle*>(data);
  return handle->graph ? handle : nullptr;
}

// "op:index" -> TF_Output; sets *ok false with a message when the op is unknown.
TF_Output ParseOutput(TF_Graph* graph, const std::string& name, std::string* error) {
  std::string op = name;
  int index = 0;
  size_t colon = name.rfind(':');
  if (colon != std::string::npos) {
    op = name.substr(0, colon);
    index = std::stoi(name.substr(colon + 1));
  }
  TF_Operation* operation = TF_GraphOperationByName(graph, op.c_str());
  if (!operation) *error = "graph has no operation named \"" + op + "\"";
  return TF_Output{operation, index};
}

size_t DataTypeSize(TF_DataType dtype) { return TF_DataTypeSize(dtype); }

// A TF_Tensor from {dtype, shape, data: TypedArray}; the bytes are copied.
TF_Tensor* TensorFromJs(napi_env env, napi_value spec, std::string* error) {
  napi_value dtype_v, shape_v, data_v;
  if (!GetNamed(env, spec, "dtype", &dtype_v) || !GetNamed(env, spec, "shape", &shape_v) ||
      !GetNamed(env, spec, "data", &data_v)) {
    *error = "a tensor needs dtype, shape and data";
    return nullptr;
  }
  auto dtype = static_cast<TF_DataType>(Int(env, dtype_v));
  std::vector<int64_t> dims = Ints(env, shape_v);
  size_t count = 1;
  for (int64_t d : dims) count *= static_cast<size_t>(d);
  bool is_typed = false;
  napi_is_typedarray(env, data_v, &is_typed);
  if (!is_typed) {
    *error = "tensor data must be a typed array";
    return nullptr;
  }
  napi_typedarray_type type;
  size_t length = 0;
  void* bytes = nullptr;
  napi_value buffer;
  size_t offset = 0;
  napi_get_typedarray_info(env, data_v, &type, &length, &bytes, &buffer, &offset);
  size_t element = 0;
  switch (type) {
    case napi_float32_array:
    case napi_int32_array:
    case napi_uint32_array:
      element = 4;
      break;
    case napi_uint16_array:
    case napi_int16_array:
      element = 2;
      break;
    case napi_uint8_array:
    case napi_int8_array:
      element = 1;
      break;
    case napi_float64_array:
    case napi_bigint64_array:
    case napi_biguint64_array:
      element = 8;
      break;
    default:
      element = 1;
  }
  size_t want = count * DataTypeSize(dtype);
  if (length * element != want) {
    *error = "tensor data has " + std::to_string(length * element) + " bytes, its dtype and shape need " +
             std::to_string(want);
    return nullptr;
  }
  TF_Tensor* tensor = TF_AllocateTensor(dtype, dims.data(), static_cast<int>(dims.size()), want);
  if (want) std::memcpy(TF_TensorData(tensor), bytes, want);
  return tensor;
}

napi_value TensorToJs(napi_env env, TF_Tensor* tensor) {
  TF_DataType dtype = TF_TensorType(tensor);
  int rank = TF_NumDims(tensor);
  napi_value shape;
  napi_create_array_with_length(env, rank, &shape);
  for (int i = 0; i < rank; i++) {
    napi_value d;
    napi_create_int64(env, TF_Dim(tensor, i), &d);
    napi_set_element(env, shape, i, d);
  }
  size_t bytes = TF_TensorByteSize(tensor);
  void* data = nullptr;
  napi_value buffer;
  napi_create_arraybuffer(env, bytes, &data, &buffer);
  if (bytes) std::memcpy(data, TF_TensorData(tensor), bytes);
  napi_typedarray_type type = napi_uint8_array;
  size_t element = 1;
  if (dtype == TF_FLOAT) type = napi_float32_array, element = 4;
  else if (dtype == TF_INT32) type = napi_int32_array, element = 4;
  else if (dtype == TF_INT64) type = napi_bigint64_array, element = 8;
  else if (dtype == TF_DOUBLE) type = napi_float64_array, element = 8;
  else if (dtype == TF_BFLOAT16 || dtype == TF_HALF) type = napi_uint16_array, element = 2;
  napi_value array;
  napi_create_typedarray(env, type, bytes / element, buffer, 0, &array);
  napi_value out, v;
  napi_create_object(env, &out);
  napi_create_int32(env, dtype, &v);
  napi_set_named_property(env, out, "dtype", v);
  napi_set_named_property(env, out, "shape", shape);
  napi_set_named_property(env, out, "data", array);
  return out;
}

// version() -> string
napi_value Version(napi_env env, napi_callback_info) {
  napi_value out;
  CHECK_NAPI(napi_create_string_utf8(env, TF_Version(), NAPI_AUTO_LENGTH, &out));
  return out;
}

// newGraph() -> external
napi_value NewGraph(napi_env env, napi_callback_info) {
  auto* handle = new GraphHandle();
  handle->graph = TF_NewGraph();
  napi_value out;
  CHECK_NAPI(napi_create_external(env, handle, FinalizeGraph, nullptr, &out));
  return out;
}

// deleteGraph(graph)
napi_value DeleteGraph(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  void* data = nullptr;
  if (argc < 1 || napi_get_value_external(env, argv[0], &data) != napi_ok) return Throw(env, "deleteGraph(graph)");
  auto* handle = static_cast<GraphHandle*>(data);
  if (handle->graph) TF_DeleteGraph(handle->graph);
  handle->graph = nullptr;
  return nullptr;
}

// addOperation(graph, type, name, inputs, attrs, controlInputs) -> number of outputs
// inputs: Array<string | string[]> ("op:index", a list for list inputs)
// attrs: Array<{name, kind, value}>, kind in type|types|int|ints|float|bool|string|shape|tensor
napi_value AddOperation(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc < 5) return Throw(env, "addOperation(graph, type, name, inputs, attrs, controlInputs?)");
  GraphHandle* handle = UnwrapGraph(env, argv[0]);
  if (!handle) return Throw(env, "addOperation: the graph was deleted");
  std::string type, name, error;
  GetString(env, argv[1], &type);
  GetString(env, argv[2], &name);
  TF_OperationDescription* desc = TF_NewOperation(handle->graph, type.c_str(), name.c_str());
  uint32_t n_inputs = ArrayLength(env, argv[3]);
  for (uint32_t i = 0; i < n_inputs; i++) {
    napi_value input = Element(env, argv[3], i);
    bool is_array = false;
    napi_is_array(env, input, &is_array);
    if (is_array) {
      std::vector<TF_Output> list;
      uint32_t n = ArrayLength(env, input);
      for (uint32_t j = 0; j < n; j++) {
        std::string s;
        GetString(env, Element(env, input, j), &s);
        list.push_back(ParseOutput(handle->graph, s, &error));
      }
      if (!error.empty()) break;
      TF_AddInputList(desc, list.data(), static_cast<int>(list.size()));
    } else {
      std::string s;
      GetString(env, input, &s);
      TF_Output out = ParseOutput(handle->graph, s, &error);
      if (!error.empty()) break;
      TF_AddInput(desc, out);
    }
  }
  if (argc > 5 && error.empty()) {
    bool is_array = false;
    napi_is_array(env, argv[5], &is_array);
    if (is_array) {
      uint32_t n = ArrayLength(env, argv[5]);
      for (uint32_t j = 0; j < n; j++) {
        std::string s;
        GetString(env, Element(env, argv[5], j), &s);
        TF_Operation* op = TF_GraphOperationByName(handle->graph, s.c_str());
        if (!op) {
          error = "graph has no operation named \"" + s + "\" (control input)";
          break;
        }
        TF_AddControlInput(desc, op);
      }
    }
  }
  std::vector<TF_Tensor*> tensors;
  TF_Status* status = TF_NewStatus();
  uint32_t n_attrs = error.empty() ? ArrayLength(env, argv[4]) : 0;
  for (uint32_t i = 0; i < n_attrs && error.empty(); i++) {
    napi_value attr = Element(env, argv[4], i), name_v, kind_v, value_v;
    if (!GetNamed(env, attr, "name", &name_v) || !GetNamed(env, attr, "kind", &kind_v) ||
        !GetNamed(env, attr, "value", &value_v)) {
      error = "an attribute needs name, kind and value";
      break;
    }
    std::string attr_name, kind;
    GetString(env, name_v, &attr_name);
    GetString(env, kind_v, &kind);
    const char* an = attr_name.c_str();
    if (kind == "type") {
      TF_SetAttrType(desc, an, static_cast<TF_DataType>(Int(env, value_v)));
    } else if (kind == "types") {
      std::vector<int64_t> v = Ints(env, value_v);
      std::vector<TF_DataType> types(v.size());
      for (size_t k = 0; k < v.size(); k++) types[k] = static_cast<TF_DataType>(v[k]);
      TF_SetAttrTypeList(desc, an, types.data(), static_cast<int>(types.size()));
    } else if (kind == "int") {
      TF_SetAttrInt(desc, an, Int(env, value_v));
    } else if (kind == "ints") {
      std::vector<int64_t> v = Ints(env, value_v);
      TF_SetAttrIntList(desc, an, v.data(), static_cast<int>(v.size()));
    } else if (kind == "float") {
      TF_SetAttrFloat(desc, an, static_cast<float>(Double(env, value_v)));
    } else if (kind == "bool") {
      bool b = false;
      napi_get_value_bool(env, value_v, &b);
      TF_SetAttrBool(desc, an, b ? 1 : 0);
    } else if (kind == "string") {
      std::string s;
      GetString(env, value_v, &s);
      TF_SetAttrString(desc, an, s.data(), s.size());
    } else if (kind == "shape") {
      std::vector<int64_t> v = Ints(env, value_v);
      TF_SetAttrShape(desc, an, v.data(), static_cast<int>(v.size()));
    } else if (kind == "tensor") {
      TF_Tensor* t = TensorFromJs(env, value_v, &error);
      if (!t) break;
      tensors.push_back(t);
      TF_SetAttrTensor(desc, an, t, status);
      if (TF_GetCode(status) != TF_OK) error = TF_Message(status);
    } else {
      error = "unknown attribute kind \"" + kind + "\"";
    }
  }
  if (!error.empty()) {
    // A description must be finished to be freed; finishing an incomplete one fails harmlessly.
    TF_FinishOperation(desc, status);
    for (TF_Tensor* t : tensors) TF_DeleteTensor(t);
    TF_DeleteStatus(status);
    return Throw(env, type + " \"" + name + "\": " + error);
  }
  TF_Operation* op = TF_FinishOperation(desc, status);
  for (TF_Tensor* t : tensors) TF_DeleteTensor(t);
  if (TF_GetCode(status) != TF_OK) {
    std::string message = type + " \"" + name + "\": " + TF_Message(status);
    TF_DeleteStatus(status);
    return Throw(env, message);
  }
  TF_DeleteStatus(status);
  napi_value out;
  CHECK_NAPI(napi_create_int32(env, TF_OperationNumOutputs(op), &out));
  return out;
}

// outputShape(graph, "op:index") -> number[] (-1 for unknown), or null for unknown rank
napi_value OutputShape(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  GraphHandle* handle = UnwrapGraph(env, argv[0]);
  if (!handle) return Throw(env, "outputShape: the graph was deleted");
  std::string name, error;
  GetString(env, argv[1], &name);
  TF_Output out = ParseOutput(handle->graph, name, &error);
  if (!error.empty()) return Throw(env, error);
  TF_Status* status = TF_NewStatus();
  int rank = TF_GraphGetTensorNumDims(handle->graph, out, status);
  napi_value result;
  if (rank < 0) {
    TF_DeleteStatus(status);
    napi_get_null(env, &result);
    return result;
  }
  std::vector<int64_t> dims(rank);
  TF_GraphGetTensorShape(handle->graph, out, dims.data(), rank, status);
  TF_DeleteStatus(status);
  napi_create_array_with_length(env, rank, &result);
  for (int i = 0; i < rank; i++) {
    napi_value d;
    napi_create_int64(env, dims[i], &d);
    napi_set_element(env, result, i, d);
  }
  return result;
}

// addGradients(graph, prefix, ys: string[], xs: string[]) -> string[] (d sum(ys) / d xs)
napi_value AddGradients(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  GraphHandle* handle = UnwrapGraph(env, argv[0]);
  if (!handle || argc < 4) return Throw(env, "addGradients(graph, prefix, ys, xs)");
  std::string prefix, error;
  GetString(env, argv[1], &prefix);
  auto outputs = [&](napi_value array) {
    std::vector<TF_Output> list;
    uint32_t n = ArrayLength(env, array);
    for (uint32_t i = 0; i < n; i++) {
      std::string s;
      GetString(env, Element(env, array, i), &s);
      list.push_back(ParseOutput(handle->graph, s, &error));
    }
    return list;
  };
  std::vector<TF_Output> ys = outputs(argv[2]);
  std::vector<TF_Output> xs = outputs(argv[3]);
  if (!error.empty()) return Throw(env, "addGradients: " + error);
  std::vector<TF_Output> dxs(xs.size());
  TF_Status* status = TF_NewStatus();
  TF_AddGradientsWithPrefix(handle->graph, prefix.c_str(), ys.data(), static_cast<int>(ys.size()), xs.data(),
                            static_cast<int>(xs.size()), nullptr, status, dxs.data());
  if (TF_GetCode(status) != TF_OK) {
    std::string message = std::string("addGradients: ") + TF_Message(status);
    TF_DeleteStatus(status);
    return Throw(env, message);
  }
  TF_DeleteStatus(status);
  napi_value result;
  napi_create_array_with_length(env, xs.size(), &result);
  for (size_t i = 0; i < dxs.size(); i++) {
    napi_value s;
    if (dxs[i].oper) {
      std::string full = std::string(TF_OperationName(dxs[i].oper)) + ":" + std::to_string(dxs[i].index);
      napi_create_string_utf8(env, full.c_str(), full.size(), &s);
    } else {
      napi_get_null(env, &s);  // x does not reach ys
    }
    napi_set_element(env, result, i, s);
  }
  return result;
}

// newSession(graph, config: Uint8Array) -> external
napi_value NewSession(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  GraphHandle* graph = UnwrapGraph(env, argv[0]);
  if (!graph) return Throw(env, "newSession(graph, config): the graph was deleted");
  TF_SessionOptions* options = TF_NewSessionOptions();
  TF_Status* status = TF_NewStatus();
  if (argc > 1) {
    bool is_typed = false;
    napi_is_typedarray(env, argv[1], &is_typed);
    if (is_typed) {
      napi_typedarray_type type;
      size_t length = 0;
      void* bytes = nullptr;
      napi_value buffer;
      size_t offset = 0;
      napi_get_typedarray_info(env, argv[1], &type, &length, &bytes, &buffer, &offset);
      TF_SetConfig(options, bytes, length, status);
      if (TF_GetCode(status) != TF_OK) {
        std::string message = std::string("newSession: bad ConfigProto: ") + TF_Message(status);
        TF_DeleteStatus(status);
        TF_DeleteSessionOptions(options);
        return Throw(env, message);
      }
    }
  }
  TF_Session* session = TF_NewSession(graph->graph, options, status);
  TF_DeleteSessionOptions(options);
  if (TF_GetCode(status) != TF_OK) {
    std::string message = std::string("newSession: ") + TF_Message(status);
    TF_DeleteStatus(status);
    return Throw(env, message);
  }
  TF_DeleteStatus(status);
  auto* handle = new SessionHandle();
  handle->session = session;
  napi_create_reference(env, argv[0], 1, &handle->graph_ref);
  napi_value out;
  CHECK_NAPI(napi_create_external(env, handle, FinalizeSession, nullptr, &out));
  return out;
}

// closeSession(session)
napi_value CloseSession(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  void* data = nullptr;
  if (argc < 1 || napi_get_value_external(env, argv[0], &data) != napi_ok) return Throw(env, "closeSession(session)");
  auto* handle = static_cast<SessionHandle*>(data);
  if (handle->session) {
    TF_Status* status = TF_NewStatus();
    TF_CloseSession(handle->session, status);
    TF_DeleteSession(handle->session, status);
    TF_DeleteStatus(status);
    handle->session = nullptr;
  }
  if (handle->graph_ref) {
    napi_delete_reference(env, handle->graph_ref);
    handle->graph_ref = nullptr;
  }
  return nullptr;
}

// run(session, feeds: Array<{name, dtype, shape, data}>, fetches: string[], targets: string[])
//   -> Array<{dtype, shape, data}>
napi_value Run(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc < 4) return Throw(env, "run(session, feeds, fetches, targets)");
  void* data = nullptr;
  if (napi_get_value_external(env, argv[0], &data) != napi_ok) return Throw(env, "run: not a session");
  auto* handle = static_cast<SessionHandle*>(data);
  if (!handle->session) return Throw(env, "run: the session was closed");
  napi_value graph_v;
  napi_get_reference_value(env, handle->graph_ref, &graph_v);
  GraphHandle* graph = UnwrapGraph(env, graph_v);
  if (!graph) return Throw(env, "run: the graph was deleted");
  std::string error;
  std::vector<TF_Output> feed_outputs;
  std::vector<TF_Tensor*> feed_values;
  uint32_t n_feeds = ArrayLength(env, argv[1]);
  for (uint32_t i = 0; i < n_feeds && error.empty(); i++) {
    napi_value feed = Element(env, argv[1], i), name_v;
    std::string name;
    if (!GetNamed(env, feed, "name", &name_v)) {
      error = "a feed needs a name";
      break;
    }
    GetString(env, name_v, &name);
    TF_Output out = ParseOutput(graph->graph, name, &error);
    if (!error.empty()) break;
    TF_Tensor* t = TensorFromJs(env, feed, &error);
    if (!t) {
      error = "feed \"" + name + "\": " + error;
      break;
    }
    feed_outputs.push_back(out);
    feed_values.push_back(t);
  }
  std::vector<TF_Output> fetches;
  uint32_t n_fetches = ArrayLength(env, argv[2]);
  for (uint32_t i = 0; i < n_fetches && error.empty(); i++) {
    std::string s;
    GetString(env, Element(env, argv[2], i), &s);
    fetches.push_back(ParseOutput(graph->graph, s, &error));
  }
  std::vector<TF_Operation*> targets;
  uint32_t n_targets = ArrayLength(env, argv[3]);
  for (uint32_t i = 0; i < n_targets && error.empty(); i++) {
    std::string s;
    GetString(env, Element(env, argv[3], i), &s);
    TF_Operation* op = TF_GraphOperationByName(graph->graph, s.c_str());
    if (!op) error = "graph has no operation named \"" + s + "\" (target)";
    targets.push_back(op);
  }
  if (!error.empty()) {
    for (TF_Tensor* t : feed_values) TF_DeleteTensor(t);
    return Throw(env, "run: " + error);
  }
  std::vector<TF_Tensor*> results(fetches.size(), nullptr);
  TF_Status* status = TF_NewStatus();
  TF_SessionRun(handle->session, nullptr, feed_outputs.data(), feed_values.data(), static_cast<int>(feed_values.size()),
                fetches.data(), results.data(), static_cast<int>(fetches.size()), targets.data(),
                static_cast<int>(targets.size()), nullptr, status);
  for (TF_Tensor* t : feed_values) TF_DeleteTensor(t);
  if (TF_GetCode(status) != TF_OK) {
    std::string message = std::string("run: ") + TF_Message(status);
    TF_DeleteStatus(status);
    for (TF_Tensor* t : results)
      if (t) TF_DeleteTensor(t);
    return Throw(env, message);
  }
  TF_DeleteStatus(status);
  napi_value out;
  napi_create_array_with_length(env, results.size(), &out);
  for (size_t i = 0; i < results.size(); i++) {
    napi_set_element(env, out, i, TensorToJs(env, results[i]));
    TF_DeleteTensor(results[i]);
  }
  return out;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"version", nullptr, Version, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"newGraph", nullptr, NewGraph, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"deleteGraph", nullptr, DeleteGraph, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"addOperation", nullptr, AddOperation, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"outputShape", nullptr, OutputShape, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"addGradients", nullptr, AddGradients, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"newSession", nullptr, NewSession, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"closeSession", nullptr, CloseSession, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"run", nullptr, Run, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(properties) / sizeof(properties[0]), properties);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
