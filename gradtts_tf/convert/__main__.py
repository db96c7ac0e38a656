from gradtts_tf.convert import main

main()
