# selfsup's graph addon (graph_session.cc), compiled against the TensorFlow C
# library and headers that @tensorflow/tfjs-node uses (its deps/ folder), so
# both load the one copy of libtensorflow in a process. build.cjs runs node-gyp.
{
  'targets': [{
    'target_name': 'selfsup_graph',
    'sources': ['graph_session.cc'],
    'include_dirs': ['<!(node paths.cjs include)'],
    'cflags_cc': ['-std=c++17', '-O2'],
    'cflags_cc!': ['-fno-exceptions'],
    'conditions': [[
      'OS=="linux"', {
        'libraries': [
          '-Wl,-rpath,<!(node paths.cjs lib)',
          '-L<!(node paths.cjs lib)',
          '-ltensorflow',
          '-ltensorflow_framework',
        ],
      },
    ]],
  }],
}
