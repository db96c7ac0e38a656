from gradtts_tf.serve.cli import main

main()
