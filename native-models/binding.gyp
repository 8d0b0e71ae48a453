{
  # Paths come from scripts/build.mjs (environment SF_TORCH_*); run `npm run build:addon`, not node-gyp directly.
  "targets": [
    {
      "target_name": "sliceform_native",
      # addon.cc: the N-API glue (no torch); the rest is pure C++ over ATen, one file per part, as the TF.js engine
      "sources": [
        "src/addon.cc",
        "src/model.cc",
        "src/network.cc",
        "src/losses.cc",
        "src/optim.cc",
        "src/checkpoint.cc",
        "src/allocator.cc",
        "src/config.cc",
        "src/errors.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node -p \"process.env.SF_TORCH_INCLUDES || ''\")"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "_GLIBCXX_USE_CXX11_ABI=<!(node -p \"process.env.SF_TORCH_CXX11_ABI || '1'\")"
      ],
      "cflags!": ["-fno-exceptions", "-fno-rtti", "-O3"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20", "-O3"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
      "libraries": [
        "-L<!(node -p \"process.env.SF_TORCH_LIBDIR || ''\")",
        "-Wl,-rpath,<!(node -p \"process.env.SF_TORCH_LIBDIR || ''\")",
        "-Wl,--no-as-needed",
        "<!@(node -p \"process.env.SF_TORCH_LIBS || '-ltorch -ltorch_cpu -lc10'\")",
        "-Wl,--as-needed"
      ],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "GCC_ENABLE_CPP_RTTI": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "OTHER_LDFLAGS": ["-Wl,-rpath,<!(node -p \"process.env.SF_TORCH_LIBDIR || ''\")"]
      }
    }
  ]
}
