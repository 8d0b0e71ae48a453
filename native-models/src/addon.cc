// N-API glue for the Sliceform native engine. Thin: argument checking, one AsyncWorker per heavy call
// (Execute() touches no JS; OnOK() builds the result), errors -> rejected promises with `kind`.
// No libtorch headers here (see model.h), so this file compiles in seconds.
#include <napi.h>

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model.h"

namespace {

using sf::NamedArray;

// ---------------------------------------------------------------------------------------------
// helpers

Napi::Error makeError(Napi::Env env, const std::string& kind, const std::string& msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Value().Set("kind", Napi::String::New(env, kind));
  return e;
}

[[noreturn]] void throwBad(Napi::Env env, const std::string& msg) { throw makeError(env, "bad-input", msg); }

double getNumber(Napi::Env env, Napi::Object o, const char* key, const std::string& where, double fallback,
                 bool required) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) {
    if (required) throwBad(env, where + ": missing " + key);
    return fallback;
  }
  if (!v.IsNumber()) throwBad(env, where + ": " + key + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int getInt(Napi::Env env, Napi::Object o, const char* key, const std::string& where, int fallback, bool required) {
  double d = getNumber(env, o, key, where, fallback, required);
  if (d != (double)(int)d) throwBad(env, where + ": " + key + " must be an integer, got " + std::to_string(d));
  return (int)d;
}

std::string getString(Napi::Env env, Napi::Object o, const char* key, const std::string& where,
                      const std::string& fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsString()) throwBad(env, where + ": " + key + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

bool getBool(Napi::Env env, Napi::Object o, const char* key, const std::string& where, bool fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsBoolean()) throwBad(env, where + ": " + key + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::vector<int64_t> getShape(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsArray()) throwBad(env, what + " must be an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> s;
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value e = a.Get(i);
    if (!e.IsNumber()) throwBad(env, what + " must be an array of integers");
    double d = e.As<Napi::Number>().DoubleValue();
    if (d != (double)(int64_t)d || d < 0 || d > 1e9) throwBad(env, what + "[" + std::to_string(i) + "] is not a valid size");
    s.push_back((int64_t)d);
  }
  return s;
}

Napi::Array shapeToJs(Napi::Env env, const std::vector<int64_t>& s) {
  Napi::Array a = Napi::Array::New(env, s.size());
  for (size_t i = 0; i < s.size(); i++) a.Set((uint32_t)i, Napi::Number::New(env, (double)s[i]));
  return a;
}

Napi::Float32Array floatsToJs(Napi::Env env, const std::vector<float>& v) {
  Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(float));
  return a;
}

Napi::Array namedToJs(Napi::Env env, const std::vector<NamedArray>& list) {
  Napi::Array arr = Napi::Array::New(env, list.size());
  for (size_t i = 0; i < list.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", list[i].name);
    o.Set("shape", shapeToJs(env, list[i].shape));
    o.Set("data", floatsToJs(env, list[i].data));
    arr.Set((uint32_t)i, o);
  }
  return arr;
}

// One promise-returning worker per call. `work` runs on the libuv pool; `done` builds the JS value.
class Worker : public Napi::AsyncWorker {
 public:
  Worker(Napi::Env env, std::function<void()> work, std::function<Napi::Value(Napi::Env)> done)
      : Napi::AsyncWorker(env, "sliceform-native"), deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)), done_(std::move(done)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }
  // keep JS buffers alive (and their pointers valid) until the call completes
  void Pin(Napi::Value v) {
    if (v.IsObject()) pins_.push_back(Napi::Persistent(v.As<Napi::Object>()));
  }

  void Execute() override {
    try {
      work_();
    } catch (const sf::Error& e) {
      kind_ = e.kind;
      msg_ = e.what();
    } catch (const std::bad_alloc&) {
      kind_ = "oom";
      msg_ = "out of memory (std::bad_alloc); use a smaller tile or batch";
    } catch (const std::exception& e) {
      kind_ = "engine";
      msg_ = e.what();
    } catch (...) {
      kind_ = "engine";
      msg_ = "unknown native error";
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (!msg_.empty()) {
      deferred_.Reject(makeError(env, kind_, msg_).Value());
      return;
    }
    try {
      deferred_.Resolve(done_(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> done_;
  std::vector<Napi::ObjectReference> pins_;
  std::string kind_, msg_;
};

// ---------------------------------------------------------------------------------------------
// Model

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Model",
                       {
                           InstanceMethod<&ModelWrap::TrainStep>("trainStep"),
                           InstanceMethod<&ModelWrap::LossAndGrad>("lossAndGrad"),
                           InstanceMethod<&ModelWrap::Predict>("predict"),
                           InstanceMethod<&ModelWrap::SetLearningRate>("setLearningRate"),
                           InstanceMethod<&ModelWrap::Save>("save"),
                           InstanceMethod<&ModelWrap::Load>("load"),
                           InstanceMethod<&ModelWrap::ExportParams>("exportParams"),
                           InstanceMethod<&ModelWrap::ImportParams>("importParams"),
                           InstanceMethod<&ModelWrap::OutputShape>("outputShape"),
                           InstanceMethod<&ModelWrap::Dispose>("dispose"),
                           InstanceAccessor<&ModelWrap::ParamCount>("paramCount"),
                           InstanceAccessor<&ModelWrap::BnParamCount>("bnParamCount"),
                           InstanceAccessor<&ModelWrap::LearningRate>("learningRate"),
                           InstanceAccessor<&ModelWrap::Disposed>("disposed"),
                       });
  }

  struct Args {
    sf::NetConfig cfg;
    sf::OptimConfig oc;
    sf::Options op;
  };

  // (config, optim?, options?) -> plain structs; throws JS errors with clear messages
  static Args ParseArgs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Args a;
    sf::NetConfig& cfg = a.cfg;
    sf::OptimConfig& oc = a.oc;
    sf::Options& op = a.op;
    if (info.Length() < 1 || !info[0].IsObject()) throwBad(env, "Model(config, optim?, options?): config must be an object");
    Napi::Object c = info[0].As<Napi::Object>();
    const std::string w = "network config";
    cfg.dims = getInt(env, c, "dims", w, 3, false);
    cfg.inChannels = getInt(env, c, "inChannels", w, 1, true);
    cfg.numClasses = getInt(env, c, "numClasses", w, 2, true);
    cfg.levels = getInt(env, c, "levels", w, 4, true);
    cfg.baseFilters = getInt(env, c, "baseFilters", w, 32, true);
    std::string pad = getString(env, c, "padding", w, "valid");
    if (pad != "valid" && pad != "same") throwBad(env, "invalid network config: padding must be 'valid' or 'same', got '" + pad + "'");
    cfg.padSame = pad == "same";
    cfg.batchNorm = getBool(env, c, "batchNorm", w, true);
    std::string bn = getString(env, c, "bnAtTest", w, "running");
    if (bn != "running" && bn != "batch") throwBad(env, "invalid network config: bnAtTest must be 'running' or 'batch', got '" + bn + "'");
    cfg.bnBatchAtTest = bn == "batch";

    if (info.Length() > 1 && info[1].IsObject()) {
      Napi::Object o = info[1].As<Napi::Object>();
      const std::string wo = "optimizer config";
      std::string kind = getString(env, o, "optimizer", wo, "sgd");
      if (kind != "sgd" && kind != "adam") throwBad(env, "optimizer must be 'sgd' or 'adam', got '" + kind + "'");
      oc.adam = kind == "adam";
      oc.lr = getNumber(env, o, "lr", wo, oc.adam ? 1e-3 : 1e-2, false);
      oc.momentum = getNumber(env, o, "momentum", wo, oc.adam ? 0.0 : 0.99, false);
      oc.weightDecay = getNumber(env, o, "weightDecay", wo, 0.0, false);
    }
    if (info.Length() > 2 && info[2].IsObject()) {
      Napi::Object o = info[2].As<Napi::Object>();
      const std::string wo = "model options";
      std::string dev = getString(env, o, "device", wo, "cpu");
      if (dev != "cpu" && dev != "cuda") throwBad(env, "device must be 'cpu' or 'cuda', got '" + dev + "'");
      op.cuda = dev == "cuda";
      op.threads = getInt(env, o, "threads", wo, 0, false);
      if (op.threads < 0 || op.threads > 1024) throwBad(env, "threads must be 0..1024");
      std::string prec = getString(env, o, "precision", wo, "fp32");
      if (prec == "fp32") op.precision = 0;
      else if (prec == "tf32") op.precision = 1;
      else if (prec == "bf16") op.precision = 2;
      else throwBad(env, "precision must be 'fp32', 'tf32' or 'bf16', got '" + prec + "'");
      op.channelsLast = getBool(env, o, "channelsLast", wo, false);
      op.seed = (int64_t)getNumber(env, o, "seed", wo, 0, false);
      std::string dtype = getString(env, o, "dtype", wo, "float32");
      if (dtype != "float32" && dtype != "float64") throwBad(env, "dtype must be 'float32' or 'float64'");
      op.float64 = dtype == "float64";
    }
    return a;
  }

  // new Model(config, optim, options) builds synchronously; createModel() (module function) builds on the
  // thread pool and passes the finished model in as an External.
  explicit ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() == 1 && info[0].IsExternal()) {
      auto* holder = info[0].As<Napi::External<std::shared_ptr<sf::Model>>>().Data();
      model_ = *holder;
      return;
    }
    Args a = ParseArgs(info);
    const sf::NetConfig& cfg = a.cfg;
    const sf::OptimConfig& oc = a.oc;
    const sf::Options& op = a.op;
    try {
      model_ = std::shared_ptr<sf::Model>(sf::Model::create(cfg, oc, op));
    } catch (const sf::Error& e) {
      throw makeError(env, e.kind, e.what());
    } catch (const std::exception& e) {
      throw makeError(env, "engine", e.what());
    }
  }

 private:
  std::shared_ptr<sf::Model> live(Napi::Env env) {
    if (!model_) throw makeError(env, "bad-input", "model is disposed");
    return model_;
  }

  // fills the worker's batch from the call's arguments (the worker is deleted if they are bad), then queues it
  Napi::Value queueWithBatch(const Napi::CallbackInfo& info, Worker* w, sf::Batch& batch) {
    try {
      batch = batchFrom(info, w);
    } catch (...) {
      delete w;
      throw;
    }
    w->Queue();
    return w->Promise();
  }

  // (input, shape, labels, classWeights?, diceWeight?) -> Batch, pinning the buffers on the worker
  sf::Batch batchFrom(const Napi::CallbackInfo& info, Worker* w) {
    Napi::Env env = info.Env();
    sf::Batch b;
    if (info.Length() < 3) throwBad(env, "expected (input: Float32Array, inputShape: number[], labels: Uint8Array|Uint16Array, classWeights?, diceWeight?)");
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throwBad(env, "input must be a Float32Array");
    auto in = info[0].As<Napi::Float32Array>();
    b.input = in.Data();
    b.inputLen = in.ElementLength();
    b.inputShape = getShape(env, info[1], "inputShape");
    if (!info[2].IsTypedArray()) throwBad(env, "labels must be a Uint8Array or Uint16Array");
    auto lt = info[2].As<Napi::TypedArray>();
    if (lt.TypedArrayType() == napi_uint8_array || lt.TypedArrayType() == napi_uint8_clamped_array) {
      b.labelBytes = 1;
      b.labels = lt.As<Napi::Uint8Array>().Data();
    } else if (lt.TypedArrayType() == napi_uint16_array) {
      b.labelBytes = 2;
      b.labels = lt.As<Napi::Uint16Array>().Data();
    } else {
      throwBad(env, "labels must be a Uint8Array or Uint16Array");
    }
    b.labelsLen = lt.ElementLength();
    if (info.Length() > 3 && !info[3].IsUndefined() && !info[3].IsNull()) {
      if (!info[3].IsArray() && !info[3].IsTypedArray()) throwBad(env, "classWeights must be an array of numbers");
      Napi::Object a = info[3].As<Napi::Object>();
      uint32_t n = a.Get("length").As<Napi::Number>().Uint32Value();
      for (uint32_t i = 0; i < n; i++) {
        Napi::Value v = a.Get(i);
        if (!v.IsNumber()) throwBad(env, "classWeights must be an array of numbers");
        b.classWeights.push_back(v.As<Napi::Number>().DoubleValue());
      }
    }
    if (info.Length() > 4 && !info[4].IsUndefined() && !info[4].IsNull()) {
      if (!info[4].IsNumber()) throwBad(env, "diceWeight must be a number");
      b.diceWeight = info[4].As<Napi::Number>().DoubleValue();
    }
    w->Pin(info[0]);
    w->Pin(info[2]);
    return b;
  }

  static Napi::Object stepToJs(Napi::Env env, const sf::StepResult& r) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("loss", r.loss);
    o.Set("annotatedVoxels", (double)r.annotated);
    o.Set("outputVoxels", (double)r.outputVoxels);
    return o;
  }

  Napi::Value TrainStep(const Napi::CallbackInfo& info) {
    auto m = live(info.Env());
    auto res = std::make_shared<sf::StepResult>();
    auto batch = std::make_shared<sf::Batch>();
    auto* w = new Worker(info.Env(), [m, res, batch] { *res = m->trainStep(*batch); },
                         [res](Napi::Env env) -> Napi::Value { return stepToJs(env, *res); });
    return queueWithBatch(info, w, *batch);
  }

  Napi::Value LossAndGrad(const Napi::CallbackInfo& info) {
    auto m = live(info.Env());
    auto res = std::make_shared<sf::StepResult>();
    auto grads = std::make_shared<std::vector<NamedArray>>();
    auto batch = std::make_shared<sf::Batch>();
    auto* w = new Worker(info.Env(), [m, res, grads, batch] { *res = m->lossAndGrad(*batch, grads.get()); },
                         [res, grads](Napi::Env env) -> Napi::Value {
                           Napi::Object o = stepToJs(env, *res);
                           o.Set("grads", namedToJs(env, *grads));
                           return o;
                         });
    return queueWithBatch(info, w, *batch);
  }

  // predict(input, shape) -> {data: Float32Array, shape: number[]}
  Napi::Value Predict(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env);
    if (info.Length() < 2) throwBad(env, "expected (input: Float32Array, inputShape: number[])");
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throwBad(env, "input must be a Float32Array");
    auto in = info[0].As<Napi::Float32Array>();
    const float* ptr = in.Data();
    size_t len = in.ElementLength();
    auto shape = getShape(env, info[1], "inputShape");
    auto out = std::make_shared<std::vector<float>>();
    auto outShape = std::make_shared<std::vector<int64_t>>();
    auto* w = new Worker(env, [m, ptr, len, shape, out, outShape] { *out = m->predict(ptr, len, shape, outShape.get()); },
                         [out, outShape](Napi::Env env) -> Napi::Value {
                           Napi::Object o = Napi::Object::New(env);
                           o.Set("data", floatsToJs(env, *out));
                           o.Set("shape", shapeToJs(env, *outShape));
                           out->clear();
                           out->shrink_to_fit();
                           return o;
                         });
    w->Pin(info[0]);
    w->Queue();
    return w->Promise();
  }

  Napi::Value SetLearningRate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env);
    if (info.Length() < 1 || !info[0].IsNumber()) throwBad(env, "setLearningRate(lr): lr must be a number");
    try {
      m->setLearningRate(info[0].As<Napi::Number>().DoubleValue());
    } catch (const sf::Error& e) {
      throw makeError(env, e.kind, e.what());
    }
    return env.Undefined();
  }

  Napi::Value PathCall(const Napi::CallbackInfo& info, bool save) {
    Napi::Env env = info.Env();
    auto m = live(env);
    if (info.Length() < 1 || !info[0].IsString()) throwBad(env, std::string(save ? "save" : "load") + "(path): path must be a string");
    std::string path = info[0].As<Napi::String>().Utf8Value();
    auto* w = new Worker(env, [m, path, save] { save ? m->save(path) : m->load(path); },
                         [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
    w->Queue();
    return w->Promise();
  }
  Napi::Value Save(const Napi::CallbackInfo& info) { return PathCall(info, true); }
  Napi::Value Load(const Napi::CallbackInfo& info) { return PathCall(info, false); }

  Napi::Value ExportParams(const Napi::CallbackInfo& info) {
    auto m = live(info.Env());
    auto out = std::make_shared<std::vector<NamedArray>>();
    auto* w = new Worker(info.Env(), [m, out] { *out = m->exportParams(); },
                         [out](Napi::Env env) -> Napi::Value { return namedToJs(env, *out); });
    w->Queue();
    return w->Promise();
  }

  Napi::Value ImportParams(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env);
    if (info.Length() < 1 || !info[0].IsArray()) throwBad(env, "importParams(params): params must be an array of {name, shape, data}");
    Napi::Array a = info[0].As<Napi::Array>();
    auto list = std::make_shared<std::vector<NamedArray>>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Value v = a.Get(i);
      if (!v.IsObject()) throwBad(env, "importParams: entry " + std::to_string(i) + " is not an object");
      Napi::Object o = v.As<Napi::Object>();
      NamedArray na;
      if (!o.Get("name").IsString()) throwBad(env, "importParams: entry " + std::to_string(i) + " has no name");
      na.name = o.Get("name").As<Napi::String>().Utf8Value();
      na.shape = getShape(env, o.Get("shape"), "importParams: " + na.name + ".shape");
      Napi::Value d = o.Get("data");
      if (!d.IsTypedArray() || d.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
        throwBad(env, "importParams: " + na.name + ".data must be a Float32Array");
      auto fa = d.As<Napi::Float32Array>();
      na.data.assign(fa.Data(), fa.Data() + fa.ElementLength());
      list->push_back(std::move(na));
    }
    auto* w = new Worker(env, [m, list] { m->importParams(*list); },
                         [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
    w->Queue();
    return w->Promise();
  }

  Napi::Value OutputShape(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env);
    if (info.Length() < 1) throwBad(env, "outputShape(spatial: number[])");
    auto s = getShape(env, info[0], "spatial shape");
    try {
      return shapeToJs(env, m->outputShape(s));
    } catch (const sf::Error& e) {
      throw makeError(env, e.kind, e.what());
    }
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    // running workers hold their own reference; memory is freed when the last one finishes
    model_.reset();
    return info.Env().Undefined();
  }

  Napi::Value ParamCount(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), (double)live(info.Env())->paramCount()); }
  Napi::Value BnParamCount(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), (double)live(info.Env())->bnParamCount()); }
  Napi::Value LearningRate(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), live(info.Env())->learningRate()); }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !model_); }

  std::shared_ptr<sf::Model> model_;
};

// ---------------------------------------------------------------------------------------------
// module functions

Napi::Value TorchVersion(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), sf::torchVersion()); }
Napi::Value CudaAvailable(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), sf::cudaAvailable()); }
Napi::Value GetThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), sf::getThreads()); }
Napi::Value CpuCacheBytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), (double)sf::cpuCacheBytes());
}
Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throwBad(env, "setThreads(n): n must be a positive integer");
  int n = info[0].As<Napi::Number>().Int32Value();
  if (n < 1) throwBad(env, "setThreads(n): n must be a positive integer");
  sf::setThreads(n);
  return env.Undefined();
}

struct InstanceData {
  Napi::FunctionReference modelCtor;
};

// createModel(config, optim?, options?) -> Promise<Model>: weight initialisation (0.4 s for the paper net) off
// the JS thread
Napi::Value CreateModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto args = std::make_shared<ModelWrap::Args>(ModelWrap::ParseArgs(info));
  auto model = std::make_shared<std::shared_ptr<sf::Model>>();
  auto* w = new Worker(env, [args, model] { *model = std::shared_ptr<sf::Model>(sf::Model::create(args->cfg, args->oc, args->op)); },
                       [model](Napi::Env env) -> Napi::Value {
                         auto* data = env.GetInstanceData<InstanceData>();
                         auto ext = Napi::External<std::shared_ptr<sf::Model>>::New(env, model.get());
                         Napi::Value obj = data->modelCtor.New({ext});
                         return obj;
                       });
  w->Queue();
  return w->Promise();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = ModelWrap::Init(env);
  auto* data = new InstanceData();
  data->modelCtor = Napi::Persistent(ctor);
  env.SetInstanceData<InstanceData>(data);
  exports.Set("Model", ctor);
  exports.Set("createModel", Napi::Function::New(env, CreateModel));
  exports.Set("torchVersion", Napi::Function::New(env, TorchVersion));
  exports.Set("cudaAvailable", Napi::Function::New(env, CudaAvailable));
  exports.Set("getThreads", Napi::Function::New(env, GetThreads));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("cpuCacheBytes", Napi::Function::New(env, CpuCacheBytes));
  return exports;
}

}  // namespace

NODE_API_MODULE(sliceform_native, Init)
