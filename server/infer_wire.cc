#include "infer_wire.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include "wire_format.h"

namespace engine::server {
namespace {

using wire::kFixed64;
using wire::kLengthDelimited;
using wire::kVarint;
using wire::Reader;
using wire::WireType;

// proto3 strings must be UTF-8, and protobuf refuses a message whose strings are not. ASCII
// is UTF-8; anything else is left to protobuf's own check.
bool IsAscii(std::string_view s) {
  for (const char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

bool ReadString(Reader& reader, std::string_view* out) {
  return reader.ReadLengthDelimited(out) && IsAscii(*out);
}

// inference.InferParameter: a oneof, so the last choice on the wire wins, as in protobuf.
bool ReadParameterValue(std::string_view bytes, InferParameterView* p) {
  Reader reader(bytes);
  while (!reader.done()) {
    uint32_t field = 0;
    WireType type{};
    if (!reader.ReadTag(&field, &type)) return false;
    uint64_t value = 0;
    std::string_view text;
    if (field == 1 && type == kVarint) {  // bool_param
      if (!reader.ReadVarint(&value)) return false;
      p->choice = inference::InferParameter::kBoolParam;
      p->bool_value = value != 0;
    } else if (field == 2 && type == kVarint) {  // int64_param
      if (!reader.ReadVarint(&value)) return false;
      p->choice = inference::InferParameter::kInt64Param;
      p->int64_value = static_cast<int64_t>(value);
    } else if (field == 3 && type == kLengthDelimited) {  // string_param
      if (!ReadString(reader, &text)) return false;
      p->choice = inference::InferParameter::kStringParam;
    } else if (field == 4 && type == kFixed64) {  // double_param
      if (!reader.ReadFixed64(&value)) return false;
      p->choice = inference::InferParameter::kDoubleParam;
    } else if (field == 5 && type == kVarint) {  // uint64_param
      if (!reader.ReadVarint(&value)) return false;
      p->choice = inference::InferParameter::kUint64Param;
      p->uint64_value = value;
    } else {
      return false;
    }
    // Only the chosen member keeps a value, as protobuf's accessors report.
    if (p->choice != inference::InferParameter::kInt64Param) p->int64_value = 0;
    if (p->choice != inference::InferParameter::kUint64Param) p->uint64_value = 0;
    if (p->choice != inference::InferParameter::kBoolParam) p->bool_value = false;
  }
  return true;
}

// One entry of the parameters map: key = 1, value = 2. A later entry with the same key
// replaces an earlier one, as protobuf's map parsing does.
bool ReadParameterEntry(std::string_view bytes, std::vector<InferParameterView>* parameters) {
  Reader reader(bytes);
  InferParameterView p;
  bool has_key = false;
  bool has_value = false;
  while (!reader.done()) {
    uint32_t field = 0;
    WireType type{};
    if (!reader.ReadTag(&field, &type) || type != kLengthDelimited) return false;
    if (field == 1 && !has_key) {
      if (!ReadString(reader, &p.key)) return false;
      has_key = true;
    } else if (field == 2 && !has_value) {
      std::string_view value;
      if (!reader.ReadLengthDelimited(&value) || !ReadParameterValue(value, &p)) return false;
      has_value = true;
    } else {
      return false;
    }
  }
  for (InferParameterView& earlier : *parameters) {
    if (earlier.key == p.key) {
      earlier = p;
      return true;
    }
  }
  parameters->push_back(p);
  return true;
}

// The shape: repeated int64, packed (the proto3 default) or one varint per element; protobuf
// accepts both, and both append.
bool ReadShape(Reader& reader, WireType type, std::vector<int64_t>* shape) {
  uint64_t value = 0;
  if (type == kVarint) {
    if (!reader.ReadVarint(&value)) return false;
    shape->push_back(static_cast<int64_t>(value));
    return true;
  }
  if (type != kLengthDelimited) return false;
  std::string_view packed;
  if (!reader.ReadLengthDelimited(&packed)) return false;
  Reader elements(packed);
  while (!elements.done()) {
    if (!elements.ReadVarint(&value)) return false;
    shape->push_back(static_cast<int64_t>(value));
  }
  return true;
}

// ModelInferRequest.InferInputTensor without parameters or contents.
bool ReadInput(std::string_view bytes, InferInputView* in) {
  Reader reader(bytes);
  while (!reader.done()) {
    uint32_t field = 0;
    WireType type{};
    if (!reader.ReadTag(&field, &type)) return false;
    if (field == 3) {
      if (!ReadShape(reader, type, &in->shape)) return false;
      continue;
    }
    if (type != kLengthDelimited) return false;
    if (field == 1) {
      if (!ReadString(reader, &in->name)) return false;
    } else if (field == 2) {
      if (!ReadString(reader, &in->datatype)) return false;
    } else {
      return false;  // 4 parameters, 5 contents, or unknown
    }
  }
  return true;
}

// ModelInferRequest.InferRequestedOutputTensor without parameters.
bool ReadOutput(std::string_view bytes, std::string_view* name) {
  Reader reader(bytes);
  while (!reader.done()) {
    uint32_t field = 0;
    WireType type{};
    if (!reader.ReadTag(&field, &type) || field != 1 || type != kLengthDelimited) return false;
    if (!ReadString(reader, name)) return false;
  }
  return true;
}

size_t StringFieldSize(std::string_view s) {
  return s.empty() ? 0 : wire::LengthDelimitedSize(s.size());  // proto3 omits empty strings
}

char* WriteStringField(uint32_t field, std::string_view s, char* out) {
  return s.empty() ? out : wire::WriteLengthDelimited(field, s, out);
}

size_t PackedShapeSize(const std::vector<int64_t>& shape) {
  size_t size = 0;
  for (const int64_t d : shape) size += wire::VarintSize(static_cast<uint64_t>(d));
  return size;
}

// ModelInferResponse.InferOutputTensor: name = 1, datatype = 2, shape = 3 (packed).
size_t OutputTensorSize(const std::string& name, const HostTensor& tensor) {
  const size_t shape = PackedShapeSize(tensor.shape);
  return StringFieldSize(name) + StringFieldSize(KServeDatatype(tensor.type)) +
         (shape == 0 ? 0 : wire::LengthDelimitedSize(shape));
}

size_t RawSize(const HostTensor& tensor) {
  return tensor.type == ElementType::kString ? BytesElementsSize(tensor.strings)
                                             : tensor.byte_size;
}

Status Invalid(std::string message) {
  return Status(StatusCode::kInvalidInput, std::move(message));
}

// Counts `counted` fields (a map's entries, an input's dims) in one message; `packed` is a
// repeated varint field whose packed bytes count one element per final byte.
int64_t CountFields(std::string_view bytes, uint32_t counted, uint32_t packed = 0) {
  Reader reader(bytes);
  int64_t count = 0;
  while (!reader.done()) {
    uint32_t field = 0;
    WireType type{};
    if (!reader.ReadTag(&field, &type)) break;
    if (field == packed && type == kLengthDelimited) {
      std::string_view values;
      if (!reader.ReadLengthDelimited(&values)) break;
      for (const char c : values) count += (static_cast<uint8_t>(c) & 0x80) == 0 ? 1 : 0;
      continue;
    }
    if (field == counted) ++count;
    if (!reader.SkipValue(field, type)) break;
  }
  return count;
}

}  // namespace

Status CheckInferRequestBounds(std::string_view bytes, const ServerLimits& limits) {
  Reader reader(bytes);
  int64_t inputs = 0;
  int64_t outputs = 0;
  int64_t raw = 0;
  int64_t parameters = 0;
  while (!reader.done()) {
    uint32_t field = 0;
    WireType type{};
    if (!reader.ReadTag(&field, &type)) break;
    std::string_view value;
    if (type != kLengthDelimited) {
      if (!reader.SkipValue(field, type)) break;
      continue;
    }
    if (!reader.ReadLengthDelimited(&value)) break;
    if (field == 4) {
      ++parameters;
    } else if (field == 5) {  // an input: its dims (3) and its parameters (4)
      const int64_t rank = CountFields(value, /*counted=*/3, /*packed=*/3);
      if (rank > limits.max_tensor_rank) {
        return Invalid("input " + std::to_string(inputs) + " has a shape of " +
                       std::to_string(rank) + " dimensions; the limit is " +
                       std::to_string(limits.max_tensor_rank));
      }
      if (CountFields(value, 4) > limits.max_parameters) {
        return Invalid("input " + std::to_string(inputs) + " has more than " +
                       std::to_string(limits.max_parameters) + " parameters");
      }
      ++inputs;
    } else if (field == 6) {  // a requested output: its parameters (2)
      if (CountFields(value, 2) > limits.max_parameters) {
        return Invalid("requested output " + std::to_string(outputs) + " has more than " +
                       std::to_string(limits.max_parameters) + " parameters");
      }
      ++outputs;
    } else if (field == 7) {
      ++raw;
    }
  }
  if (inputs > limits.max_inputs) {
    return Invalid("request has " + std::to_string(inputs) + " inputs; the limit is " +
                   std::to_string(limits.max_inputs));
  }
  if (outputs > limits.max_outputs) {
    return Invalid("request asks for " + std::to_string(outputs) + " outputs; the limit is " +
                   std::to_string(limits.max_outputs));
  }
  if (raw > limits.max_inputs) {
    return Invalid("raw_input_contents has " + std::to_string(raw) + " buffers; a request has "
                   "at most " + std::to_string(limits.max_inputs) + " inputs");
  }
  if (parameters > limits.max_parameters) {
    return Invalid("request has " + std::to_string(parameters) + " parameters; the limit is " +
                   std::to_string(limits.max_parameters));
  }
  return Status::Ok();
}

bool ReadInferRequest(std::string_view bytes, InferRequestView* out) {
  *out = InferRequestView{};
  Reader reader(bytes);
  while (!reader.done()) {
    uint32_t field = 0;
    WireType type{};
    // Every field of ModelInferRequest is length-delimited.
    if (!reader.ReadTag(&field, &type) || type != kLengthDelimited) return false;
    std::string_view value;
    switch (field) {
      case 1:
        if (!ReadString(reader, &out->model_name)) return false;
        break;
      case 2:
        if (!ReadString(reader, &out->model_version)) return false;
        break;
      case 3:
        if (!ReadString(reader, &out->id)) return false;
        break;
      case 4:
        if (!reader.ReadLengthDelimited(&value) || !ReadParameterEntry(value, &out->parameters)) {
          return false;
        }
        break;
      case 5:
        if (!reader.ReadLengthDelimited(&value) || !ReadInput(value, &out->inputs.emplace_back())) {
          return false;
        }
        break;
      case 6:
        if (!reader.ReadLengthDelimited(&value) ||
            !ReadOutput(value, &out->output_names.emplace_back())) {
          return false;
        }
        break;
      case 7:
        if (!reader.ReadLengthDelimited(&out->raw_input_contents.emplace_back())) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

size_t InferResponseSize(const InferResponseFields& response) {
  size_t size = StringFieldSize(response.model_name) + StringFieldSize(response.model_version) +
                StringFieldSize(response.id);
  for (const auto& [name, tensor] : *response.outputs) {
    size += wire::LengthDelimitedSize(OutputTensorSize(name, tensor));
    size += wire::LengthDelimitedSize(RawSize(tensor));
  }
  return size;
}

char* WriteInferResponse(const InferResponseFields& response, char* out) {
  // Field order as protobuf writes it: 1-3, every output (5), then every raw content (6).
  out = WriteStringField(1, response.model_name, out);
  out = WriteStringField(2, response.model_version, out);
  out = WriteStringField(3, response.id, out);
  for (const auto& [name, tensor] : *response.outputs) {
    out = wire::WriteLengthPrefix(5, OutputTensorSize(name, tensor), out);
    out = WriteStringField(1, name, out);
    out = WriteStringField(2, KServeDatatype(tensor.type), out);
    const size_t shape = PackedShapeSize(tensor.shape);
    if (shape != 0) {
      out = wire::WriteLengthPrefix(3, shape, out);
      for (const int64_t d : tensor.shape) out = wire::WriteVarint(static_cast<uint64_t>(d), out);
    }
  }
  for (const auto& output : *response.outputs) {
    const HostTensor& tensor = output.second;
    out = wire::WriteLengthPrefix(6, RawSize(tensor), out);
    if (tensor.type == ElementType::kString) {
      out = WriteBytesElements(tensor.strings, out);
    } else if (tensor.byte_size != 0) {
      std::memcpy(out, tensor.data, tensor.byte_size);
      out += tensor.byte_size;
    }
  }
  return out;
}

}  // namespace engine::server
